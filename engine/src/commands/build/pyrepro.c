/* The library `strata build` preloads into componentize-py (Linux, x86_64, glibc) so that the
 * same Python sources build the same bytes. It is built from this file by engine/build.rs and
 * carried inside strata; nothing else loads it.
 *
 * componentize-py 0.25.1 reads four things that differ from one run to the next, and each one
 * reaches the component (see docs/src/components.md, "Reproducible Python builds"):
 *
 * 1. Randomness: the seeds of its Rust hash maps (hence the order of the WASI stub adapters it
 *    collects in one) and the WASI random source of the CPython it pre-initializes (hence the
 *    hash secret, the layout of every dict and set, the `random` module's state). getrandom,
 *    getentropy and syscall(SYS_getrandom) give a fixed stream here, the same in every thread.
 * 2. Clocks: clock_gettime gives one fixed time for every clock.
 * 3. File metadata: the standard library is extracted to a fresh folder for every build, and the
 *    pre-initialization sees its inode numbers (as WASI metadata hashes, in st_ino and d_ino)
 *    and times, and the sizes of folders, which depend on the file system. statx here gives an
 *    inode number derived from the path (relative to the staging folder strata names in
 *    STRATA_PYREPRO_ROOT), one device, one fixed time (1980-01-01) and 4096 for a folder's size.
 * 4. Directory order: the order in which the kernel lists a folder. getdents64 here reads the
 *    whole folder and gives its entries in byte order of their names.
 *
 * componentize-py's WASI host reads files through rustix, which makes its system calls itself
 * rather than through the C library, so 3 and 4 cannot be done by replacing C functions: a
 * seccomp filter sends every statx and getdents64 to a SIGSYS handler here, which makes the real
 * call (through one instruction at a fixed address that the filter lets through) and then
 * changes the result. What CPython sees of files comes through these two calls (fstat and
 * newfstatat, which the dynamic loader uses before any library could handle a signal, are left
 * alone: replacing them changed no byte). The filter is inherited by componentize-py's children
 * (it runs a few helpers at start); they get this library too (LD_PRELOAD is inherited), and
 * the fixed address makes the filter let their own copy's calls through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* 1980-01-01, the time strata gives the staged sources too. */
#define FIXED_S 315532800L

/* ---- 1. randomness ---- */

static __thread uint64_t stream = 0x9e3779b97f4a7c15ULL;

static void fill(void *buf, size_t len) {
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        stream ^= stream << 13;
        stream ^= stream >> 7;
        stream ^= stream << 17;
        p[i] = (unsigned char)(stream >> 24);
    }
}

ssize_t getrandom(void *buf, size_t len, unsigned flags) {
    (void)flags;
    fill(buf, len);
    return (ssize_t)len;
}

int getentropy(void *buf, size_t len) {
    fill(buf, len);
    return 0;
}

long syscall(long n, ...) {
    va_list ap;
    va_start(ap, n);
    long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
    long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
    va_end(ap);
    if (n == SYS_getrandom) {
        fill((void *)a, (size_t)b);
        return b;
    }
    static long (*real)(long, ...);
    if (!real) real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(n, a, b, c, d, e, f);
}

/* ---- 2. clocks ---- */

int clock_gettime(clockid_t clock, struct timespec *ts) {
    (void)clock;
    ts->tv_sec = FIXED_S;
    ts->tv_nsec = 0;
    return 0;
}

/* ---- raw system calls, through the one instruction the filter lets through ---- */

#define GADGET_ADDR 0x5a5a5a5a0000UL
/* mov rax,rdi; mov rdi,rsi; mov rsi,rdx; mov rdx,rcx; mov r10,r8; mov r8,r9;
 * mov r9,[rsp+8]; syscall; ret */
static const unsigned char gadget_code[] = {0x48, 0x89, 0xf8, 0x48, 0x89, 0xf7, 0x48, 0x89, 0xd6,
                                            0x48, 0x89, 0xca, 0x4d, 0x89, 0xc2, 0x4d, 0x89, 0xc8,
                                            0x4c, 0x8b, 0x4c, 0x24, 0x08, 0x0f, 0x05, 0xc3};
/* The address the kernel reports for a call from the gadget: just after its `syscall`. */
#define GADGET_IP (GADGET_ADDR + 25)
typedef long (*raw_fn)(long, long, long, long, long, long, long);
#define RAW(n, a, b, c, d, e, f)                                                              \
    (((raw_fn)GADGET_ADDR)((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e),      \
                           (long)(f)))

/* ---- 3. file metadata ---- */

static size_t length(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* Appends "/" and `name` (when not empty) to the path of `n` bytes in `out`. */
static void join(char *out, size_t n, size_t cap, const char *name) {
    if (name && name[0]) {
        if (n && out[n - 1] != '/' && n < cap - 1) out[n++] = '/';
        for (size_t i = 0; name[i] && n < cap - 1; i++) out[n++] = name[i];
    }
    out[n] = 0;
}

/* The path of `name` relative to the folder `dirfd` (the folder itself when `name` is ""). */
static void full_path(int dirfd, const char *name, char *out, size_t cap) {
    size_t n = 0;
    if (!name || name[0] != '/') {
        if (dirfd == AT_FDCWD) {
            long r = RAW(SYS_getcwd, out, cap, 0, 0, 0, 0);
            n = r > 0 ? length(out) : 0;
        } else {
            char link[32] = "/proc/self/fd/";
            char digits[12];
            int k = 14, m = 0;
            unsigned v = (unsigned)dirfd;
            do {
                digits[m++] = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            while (m) link[k++] = digits[--m];
            link[k] = 0;
            long r = RAW(SYS_readlink, link, out, cap - 1, 0, 0, 0);
            n = r > 0 ? (size_t)r : 0;
        }
    }
    join(out, n, cap, name);
}

/* The staging folder (STRATA_PYREPRO_ROOT): paths under it are hashed relative to it, so that
 * where it is does not matter. */
static char root[4096];
static size_t root_length;

/* FNV-1a of the path, kept to 32 bits so that the number has the same size every time. */
static uint64_t path_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    if (root_length && !strncmp(s, root, root_length) && (!s[root_length] || s[root_length] == '/'))
        s += root_length;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return (h & 0xffffffffULL) | 1;
}

static uint64_t inode(int dirfd, const char *name) {
    char path[4096];
    full_path(dirfd, name, path, sizeof path);
    return path_hash(path);
}

static int normalised(unsigned mode) { return S_ISREG(mode) || S_ISDIR(mode) || S_ISLNK(mode); }

static void fix_statx(int dirfd, const char *name, int flags, struct statx *sx) {
    if (!normalised(sx->stx_mode)) return;
    sx->stx_ino = inode(dirfd, (flags & AT_EMPTY_PATH) && (!name || !name[0]) ? "" : name);
    /* A folder's size is its file system's (ext4 gives 4096 a block, tmpfs 20 an entry). */
    if (S_ISDIR(sx->stx_mode)) sx->stx_size = 4096;
    sx->stx_dev_major = 0;
    sx->stx_dev_minor = 1;
    sx->stx_mnt_id = 1;
    struct statx_timestamp t = {FIXED_S, 0, 0};
    sx->stx_atime = sx->stx_btime = sx->stx_ctime = sx->stx_mtime = t;
}

/* ---- 4. directory order ---- */

struct dirent64_raw {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* One folder read whole: its records, and their offsets in name order. */
struct listing {
    char *buf;
    size_t size, cap;
    uint32_t *order;
    size_t n, next;
};

#define MAX_FD 65536
static struct listing listings[MAX_FD];
static volatile int listings_lock;

static void *raw_alloc(size_t n) {
    long r = RAW(SYS_mmap, 0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return r < 0 && r > -4096 ? 0 : (void *)r;
}

static void raw_free(void *p, size_t n) {
    if (p) RAW(SYS_munmap, p, n, 0, 0, 0, 0);
}

static int name_cmp(const char *a, const char *b) {
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

#define RECORD(buf, off) ((struct dirent64_raw *)((buf) + (off)))

static long load(int fd, struct listing *l) {
    raw_free(l->buf, l->cap);
    raw_free(l->order, l->n * 4 + 4);
    memset(l, 0, sizeof *l);
    size_t cap = 1 << 16, size = 0;
    char *buf = raw_alloc(cap);
    if (!buf) return -ENOMEM;
    for (;;) {
        if (cap - size < 1 << 15) {
            char *bigger = raw_alloc(cap * 2);
            if (!bigger) {
                raw_free(buf, cap);
                return -ENOMEM;
            }
            memcpy(bigger, buf, size);
            raw_free(buf, cap);
            buf = bigger;
            cap *= 2;
        }
        long r = RAW(SYS_getdents64, fd, buf + size, cap - size, 0, 0, 0);
        if (r < 0) {
            raw_free(buf, cap);
            return r;
        }
        if (r == 0) break;
        size += (size_t)r;
    }
    size_t n = 0;
    for (size_t off = 0; off < size; off += RECORD(buf, off)->d_reclen) n++;
    uint32_t *order = raw_alloc(n * 4 + 4);
    if (!order) {
        raw_free(buf, cap);
        return -ENOMEM;
    }
    size_t i = 0;
    for (size_t off = 0; off < size; off += RECORD(buf, off)->d_reclen) order[i++] = (uint32_t)off;
    for (size_t a = 1; a < n; a++) { /* insertion sort: folders are small */
        uint32_t x = order[a];
        size_t b = a;
        while (b > 0 && name_cmp(RECORD(buf, order[b - 1])->d_name, RECORD(buf, x)->d_name) > 0) {
            order[b] = order[b - 1];
            b--;
        }
        order[b] = x;
    }
    char path[4096];
    full_path(fd, "", path, sizeof path);
    size_t dir_length = length(path);
    for (size_t k = 0; k < n; k++) {
        struct dirent64_raw *e = RECORD(buf, order[k]);
        join(path, dir_length, sizeof path, e->d_name);
        e->d_ino = path_hash(path);
        e->d_off = (int64_t)k + 1;
    }
    l->buf = buf;
    l->cap = cap;
    l->size = size;
    l->order = order;
    l->n = n;
    return 0;
}

/* A folder is read whole when it is read from its start (a fresh descriptor, or one sought
 * back to 0), then served from the listing. */
static long sorted_getdents64(int fd, char *out, size_t count) {
    if (fd < 0 || fd >= MAX_FD) return RAW(SYS_getdents64, fd, out, count, 0, 0, 0);
    struct listing *l = &listings[fd];
    long pos = RAW(SYS_lseek, fd, 0, SEEK_CUR, 0, 0, 0);
    if (pos < 0) return pos;
    if (pos == 0 || !l->buf) {
        long r = load(fd, l);
        if (r < 0) return r;
    }
    size_t written = 0;
    while (l->next < l->n) {
        struct dirent64_raw *e = RECORD(l->buf, l->order[l->next]);
        if (written + e->d_reclen > count) {
            if (written == 0) return -EINVAL;
            break;
        }
        memcpy(out + written, e, e->d_reclen);
        written += e->d_reclen;
        l->next++;
    }
    return (long)written;
}

static void on_sigsys(int sig, siginfo_t *info, void *context) {
    (void)sig;
    greg_t *g = ((ucontext_t *)context)->uc_mcontext.gregs;
    long nr = info->si_syscall, r;
    long a = g[REG_RDI], b = g[REG_RSI], c = g[REG_RDX];
    long d = g[REG_R10], e = g[REG_R8], f = g[REG_R9];
    if (nr == SYS_statx) {
        r = RAW(SYS_statx, a, b, c, d, e, f);
        if (r == 0) fix_statx((int)a, (const char *)b, (int)c, (struct statx *)e);
    } else if (nr == SYS_getdents64) {
        while (__sync_lock_test_and_set(&listings_lock, 1)) {
        }
        r = sorted_getdents64((int)a, (char *)b, (size_t)c);
        __sync_lock_release(&listings_lock);
    } else {
        r = RAW(nr, a, b, c, d, e, f);
    }
    g[REG_RAX] = r;
}

__attribute__((constructor)) static void install(void) {
    const char *r = getenv("STRATA_PYREPRO_ROOT");
    if (r && r[0] == '/' && length(r) < sizeof root) {
        memcpy(root, r, length(r) + 1);
        root_length = length(r);
        while (root_length > 1 && root[root_length - 1] == '/') root[--root_length] = 0;
    }
    void *page = mmap((void *)GADGET_ADDR, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page != (void *)GADGET_ADDR) return;
    memcpy(page, gadget_code, sizeof gadget_code);
    if (mprotect(page, 4096, PROT_READ | PROT_EXEC) != 0) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, 0) != 0) return;
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0) return; /* a child: the filter is inherited */
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)GADGET_IP, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, instruction_pointer) + 4),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(GADGET_IP >> 32), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_statx, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getdents64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
    };
    struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) return;
    /* Tells strata that the filter is in place (a child that cannot handle it dies on its first
     * statx, so a build that succeeds went through it). */
    if (root_length) {
        char marker[4096 + 16];
        memcpy(marker, root, root_length);
        memcpy(marker + root_length, "/pyrepro.active", 16);
        int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) close(fd);
    }
}
