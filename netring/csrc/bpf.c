#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "bpf.h"

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    long rc = syscall(__NR_bpf, cmd, attr, sizeof(*attr));
    return rc < 0 ? -errno : (int)rc;
}

static uint64_t ptr(const void *p)
{
    return (uint64_t)(uintptr_t)p;
}

static void set_name(char dst[BPF_OBJ_NAME_LEN], const char *name)
{
    if (name)
        strncpy(dst, name, BPF_OBJ_NAME_LEN - 1);  /* zero-filled by the memset of attr */
}

int nr_bpf_prog_load(uint32_t prog_type, const void *insns, uint32_t insn_cnt,
                     const char *license, const char *name, uint32_t expected_attach_type,
                     uint32_t prog_flags, uint32_t prog_ifindex,
                     char *log_buf, uint32_t log_size, uint32_t log_level)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = prog_type;
    a.prog_flags = prog_flags;  /* e.g. BPF_F_XDP_HAS_FRAGS: multi-buffer aware */
    a.insns = ptr(insns);
    a.insn_cnt = insn_cnt;
    a.license = ptr(license);
    a.expected_attach_type = expected_attach_type;
    a.prog_ifindex = prog_ifindex;  /* 0, or the device to offload to (resolved in this thread's netns) */
    set_name(a.prog_name, name);
    if (log_buf && log_size) {
        log_buf[0] = 0;
        a.log_buf = ptr(log_buf);
        a.log_size = log_size;
        a.log_level = log_level;
    }
    return sys_bpf(BPF_PROG_LOAD, &a);
}

int nr_bpf_map_create(uint32_t map_type, uint32_t key_size, uint32_t value_size,
                      uint32_t max_entries, uint32_t map_flags, const char *name)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = map_type;
    a.key_size = key_size;
    a.value_size = value_size;
    a.max_entries = max_entries;
    a.map_flags = map_flags;
    set_name(a.map_name, name);
    return sys_bpf(BPF_MAP_CREATE, &a);
}

static int map_elem(int cmd, int fd, const void *key, const void *value, uint64_t flags)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_fd = fd;
    a.key = ptr(key);
    a.value = ptr(value);
    a.flags = flags;
    return sys_bpf(cmd, &a);
}

int nr_bpf_map_lookup(int fd, const void *key, void *value, uint64_t flags)
{
    return map_elem(BPF_MAP_LOOKUP_ELEM, fd, key, value, flags);
}

int nr_bpf_map_update(int fd, const void *key, const void *value, uint64_t flags)
{
    return map_elem(BPF_MAP_UPDATE_ELEM, fd, key, value, flags);
}

int nr_bpf_map_delete(int fd, const void *key)
{
    return map_elem(BPF_MAP_DELETE_ELEM, fd, key, NULL, 0);
}

int nr_bpf_map_next_key(int fd, const void *key, void *next_key)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_fd = fd;
    a.key = ptr(key);  /* NULL: first key */
    a.next_key = ptr(next_key);
    return sys_bpf(BPF_MAP_GET_NEXT_KEY, &a);
}

static int obj_info(int fd, void *info, uint32_t len)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    memset(info, 0, len);
    a.info.bpf_fd = fd;
    a.info.info_len = len;
    a.info.info = ptr(info);
    return sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
}

int nr_bpf_prog_info(int fd, struct bpf_prog_info *info)
{
    return obj_info(fd, info, sizeof(*info));
}

int nr_bpf_map_info(int fd, struct bpf_map_info *info)
{
    return obj_info(fd, info, sizeof(*info));
}

int nr_bpf_link_info(int fd, uint32_t *type, uint32_t *id, uint32_t *prog_id, uint32_t *ifindex)
{
    struct bpf_link_info info;
    int rc = obj_info(fd, &info, sizeof(info));
    if (rc < 0)
        return rc;
    *type = info.type;
    *id = info.id;
    *prog_id = info.prog_id;
    *ifindex = info.type == BPF_LINK_TYPE_XDP ? info.xdp.ifindex : 0;
    return 0;
}

int nr_bpf_get_fd_by_id(int kind, uint32_t id)
{
    static const int cmds[] = { BPF_PROG_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID, BPF_LINK_GET_FD_BY_ID };
    union bpf_attr a;
    if (kind < 0 || kind > 2)
        return -EINVAL;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;  /* prog_id, map_id and link_id share this slot */
    return sys_bpf(cmds[kind], &a);
}

int nr_bpf_next_id(int kind, uint32_t start, uint32_t *next)
{
    static const int cmds[] = { BPF_PROG_GET_NEXT_ID, BPF_MAP_GET_NEXT_ID, BPF_LINK_GET_NEXT_ID };
    union bpf_attr a;
    int rc;
    if (kind < 0 || kind > 2)
        return -EINVAL;
    memset(&a, 0, sizeof(a));
    a.start_id = start;
    rc = sys_bpf(cmds[kind], &a);
    if (rc == 0)
        *next = a.next_id;
    return rc;
}

int nr_bpf_link_create_xdp(int prog_fd, int ifindex, uint32_t flags)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.link_create.prog_fd = prog_fd;
    a.link_create.target_ifindex = ifindex;  /* resolved in the calling thread's netns */
    a.link_create.attach_type = BPF_XDP;
    a.link_create.flags = flags;
    return sys_bpf(BPF_LINK_CREATE, &a);
}

int nr_bpf_link_update(int link_fd, int new_prog_fd)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.link_update.link_fd = link_fd;
    a.link_update.new_prog_fd = new_prog_fd;
    return sys_bpf(BPF_LINK_UPDATE, &a);
}

int nr_bpf_link_detach(int link_fd)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.link_detach.link_fd = link_fd;
    return sys_bpf(BPF_LINK_DETACH, &a);
}

int nr_bpf_prog_test_run(int prog_fd, const void *data_in, uint32_t size_in, void *data_out,
                         uint32_t *size_out, uint32_t repeat, uint32_t *retval)
{
    union bpf_attr a;
    int rc;
    memset(&a, 0, sizeof(a));
    a.test.prog_fd = prog_fd;
    a.test.data_in = ptr(data_in);
    a.test.data_size_in = size_in;
    a.test.data_out = ptr(data_out);
    a.test.data_size_out = *size_out;
    a.test.repeat = repeat;
    rc = sys_bpf(BPF_PROG_TEST_RUN, &a);
    if (rc == 0) {
        *size_out = a.test.data_size_out;
        *retval = a.test.retval;
    }
    return rc;
}

/* One in-kernel generation run: BPF_PROG_TEST_RUN in live-frames mode. The kernel runs the XDP
 * program `repeat` times over pages initialised from `data` (batch_size pages at a time) and
 * transmits what it returns XDP_TX for out of `ingress_ifindex`, which it resolves in the calling
 * thread's namespace. Returns 0 or -errno; -EINTR when a signal cut the run short (the program's own
 * counter says how many frames ran). Live mode takes no data_out/ctx_out, and ctx_in.data_end must
 * equal the data size. */
int nr_bpf_xdp_live_run(int prog_fd, const void *data, uint32_t size, uint32_t ingress_ifindex,
                        uint32_t repeat, uint32_t batch_size)
{
    union bpf_attr a;
    struct xdp_md ctx;
    memset(&a, 0, sizeof(a));
    memset(&ctx, 0, sizeof(ctx));
    ctx.data_end = size;
    ctx.ingress_ifindex = ingress_ifindex;
    a.test.prog_fd = prog_fd;
    a.test.data_in = ptr(data);
    a.test.data_size_in = size;
    a.test.ctx_in = ptr(&ctx);
    a.test.ctx_size_in = sizeof(ctx);
    a.test.repeat = repeat;
    a.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
    a.test.batch_size = batch_size;
    return sys_bpf(BPF_PROG_TEST_RUN, &a);
}
