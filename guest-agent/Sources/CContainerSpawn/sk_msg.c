// Async-signal-safe message composition for the spawn child: strerror() is not async-signal-safe
// (locale, static buffers), so errno texts come from a static table with glibc's wording.
#include "sk_internal.h"

#include <errno.h>
#include <string.h>

static const struct {
    int err;
    const char *text;
} sk_errno_table[] = {
    {EPERM, "Operation not permitted"},
    {ENOENT, "No such file or directory"},
    {ESRCH, "No such process"},
    {EINTR, "Interrupted system call"},
    {EIO, "Input/output error"},
    {ENXIO, "No such device or address"},
    {E2BIG, "Argument list too long"},
    {ENOEXEC, "Exec format error"},
    {EBADF, "Bad file descriptor"},
    {ECHILD, "No child processes"},
    {EAGAIN, "Resource temporarily unavailable"},
    {ENOMEM, "Cannot allocate memory"},
    {EACCES, "Permission denied"},
    {EFAULT, "Bad address"},
    {ENOTBLK, "Block device required"},
    {EBUSY, "Device or resource busy"},
    {EEXIST, "File exists"},
    {EXDEV, "Invalid cross-device link"},
    {ENODEV, "No such device"},
    {ENOTDIR, "Not a directory"},
    {EISDIR, "Is a directory"},
    {EINVAL, "Invalid argument"},
    {ENFILE, "Too many open files in system"},
    {EMFILE, "Too many open files"},
    {ENOTTY, "Inappropriate ioctl for device"},
    {ETXTBSY, "Text file busy"},
    {EFBIG, "File too large"},
    {ENOSPC, "No space left on device"},
    {ESPIPE, "Illegal seek"},
    {EROFS, "Read-only file system"},
    {EMLINK, "Too many links"},
    {EPIPE, "Broken pipe"},
    {EDOM, "Numerical argument out of domain"},
    {ERANGE, "Numerical result out of range"},
    {EDEADLK, "Resource deadlock avoided"},
    {ENAMETOOLONG, "File name too long"},
    {ENOLCK, "No locks available"},
    {ENOSYS, "Function not implemented"},
    {ENOTEMPTY, "Directory not empty"},
    {ELOOP, "Too many levels of symbolic links"},
    {ENOMSG, "No message of desired type"},
    {ENOSTR, "Device not a stream"},
    {ENODATA, "No data available"},
    {ENOLINK, "Link has been severed"},
    {EOVERFLOW, "Value too large for defined data type"},
    {EBADFD, "File descriptor in bad state"},
    {ELIBBAD, "Accessing a corrupted shared library"},
    {EUSERS, "Too many users"},
    {ENOTSOCK, "Socket operation on non-socket"},
    {EOPNOTSUPP, "Operation not supported"},
    {EAFNOSUPPORT, "Address family not supported by protocol"},
    {EADDRINUSE, "Address already in use"},
    {ECONNRESET, "Connection reset by peer"},
    {ENOTCONN, "Transport endpoint is not connected"},
    {ETIMEDOUT, "Connection timed out"},
    {ECONNREFUSED, "Connection refused"},
    {EHOSTUNREACH, "No route to host"},
    {ESTALE, "Stale file handle"},
    {EDQUOT, "Disk quota exceeded"},
    {ENOMEDIUM, "No medium found"},
    {ECANCELED, "Operation canceled"},
    {EOWNERDEAD, "Owner died"},
};

const char *sk_errno_text(int err) {
    for (size_t i = 0; i < sizeof(sk_errno_table) / sizeof(sk_errno_table[0]); i++) {
        if (sk_errno_table[i].err == err) return sk_errno_table[i].text;
    }
    return NULL;
}

void sk_msg_init(sk_msg *m) {
    m->len = 0;
    m->buf[0] = '\0';
}

void sk_msg_add(sk_msg *m, const char *s) {
    if (s == NULL) s = "(null)";
    while (*s != '\0' && m->len + 1 < sizeof(m->buf)) m->buf[m->len++] = *s++;
    m->buf[m->len] = '\0';
}

void sk_msg_add_long(sk_msg *m, long v) {
    char digits[24];
    size_t n = 0;
    unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) digits[n++] = '-';
    char text[24];
    for (size_t i = 0; i < n; i++) text[i] = digits[n - 1 - i];
    text[n] = '\0';
    sk_msg_add(m, text);
}

void sk_msg_add_hex(sk_msg *m, uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    char text[19];
    text[0] = '0';
    text[1] = 'x';
    for (int i = 0; i < 16; i++) text[2 + i] = digits[(v >> (60 - 4 * i)) & 0xf];
    text[18] = '\0';
    sk_msg_add(m, text);
}

void sk_msg_add_errno(sk_msg *m, int err) {
    const char *text = sk_errno_text(err);
    if (text != NULL) {
        sk_msg_add(m, text);
    } else {
        sk_msg_add(m, "errno ");
        sk_msg_add_long(m, err);
    }
}

void sk_fd_path(char *buf, int fd) {
    sk_msg m;
    sk_msg_init(&m);
    sk_msg_add(&m, "/proc/self/fd/");
    sk_msg_add_long(&m, fd);
    memcpy(buf, m.buf, m.len + 1);
}
