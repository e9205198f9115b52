// guest_port_relay: carries the requests of one host session from the agent's virtio-serial port
// to the pipe its ttrpc connection reads, and decides alone where the session's input ends.
//
// Why not let NIO read the port: virtio_console reports POLLHUP while the host end is closed, and a
// next host may connect (and send) before anyone looks. NIO took that HUP for "read to EOF", and a
// read that then found the new host connected and no data yet tripped its precondition ("got
// .readEOF and read returned not reading any bytes, nor EOF"): PID 1 trapped and the guest kernel
// panicked. Closing the port between sessions also made the kernel discard a next host's request
// that had already arrived. Here the port stays open for the agent's life and a session's input
// ends at the first of:
//   - a hang-up seen on the port, once what it still holds has been read;
//   - a request whose stream id does not follow the session's last one: ttrpc clients number their
//     streams upwards, so it is the first request of a next host whose bytes arrived before the
//     previous host's hang-up did; it and what follows are handed to the next session (`carry`).
// Replies do not pass through here: the connection writes them to the port itself (its output's
// HUP only closes that output, and the connection with it; then this returns AGENT_CLOSED).
#define _GNU_SOURCE
#include "guest_sys.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

enum { relay_chunk = 64 * 1024, header_size = 10, type_request = 1 };

// How long the relay sleeps in poll() before it looks at the port again by itself (ms). With
// several vCPUs online under TCG, the host's next request was seen to wait unanswered for tens of
// seconds while this thread slept in an unbounded poll() on the port (7 of 16 CRI-suite runs, most
// with a busy host; the agent's own counters showed it asleep in poll with every earlier request
// relayed). With the poll bounded, and a read after each timeout, none waited in 7 runs of 7, and
// no timeout ever found a request waiting: what the periodic wakeup keeps going is not known (see
// README, "Known limits").
enum { relay_recheck_ms = 250 };

static int write_all(int fd, const unsigned char *data, size_t length) {
    while (length > 0) {
        ssize_t n = write(fd, data, length);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? -errno : -EPIPE;
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

typedef struct {
    unsigned char header[header_size]; // a frame header being collected (not forwarded yet)
    size_t header_length;
    unsigned long long payload_left; // payload bytes of the current frame still to forward
    unsigned int last_stream;        // 0 before the session's first request
} relay_framing;

static unsigned int big_endian_u32(const unsigned char *bytes) {
    return (unsigned int)bytes[0] << 24 | (unsigned int)bytes[1] << 16 | (unsigned int)bytes[2] << 8 | bytes[3];
}

// Forwards `data` frame by frame. Returns 0, GUEST_RELAY_NEW_HOST (the bytes from the next host's
// first header on are stored in `carry`), or a negative status of the write.
static int relay_forward(relay_framing *framing, int requests_out, const unsigned char *data, size_t length,
                         unsigned char *carry, size_t carry_capacity, size_t *carry_length) {
    size_t at = 0;
    while (at < length) {
        if (framing->payload_left > 0) {
            size_t take = length - at < framing->payload_left ? length - at : (size_t)framing->payload_left;
            int status = write_all(requests_out, data + at, take);
            if (status < 0) return status;
            framing->payload_left -= take;
            at += take;
            continue;
        }
        size_t take = header_size - framing->header_length;
        if (take > length - at) take = length - at;
        memcpy(framing->header + framing->header_length, data + at, take);
        framing->header_length += take;
        at += take;
        if (framing->header_length < header_size) break;
        unsigned int stream = big_endian_u32(framing->header + 4);
        if (framing->header[8] == type_request && framing->last_stream != 0 && stream <= framing->last_stream) {
            size_t rest = length - at;
            if (header_size + rest <= carry_capacity) {
                memcpy(carry, framing->header, header_size);
                memcpy(carry + header_size, data + at, rest);
                *carry_length = header_size + rest;
            }
            return GUEST_RELAY_NEW_HOST;
        }
        int status = write_all(requests_out, framing->header, header_size);
        if (status < 0) return status;
        if (framing->header[8] == type_request) framing->last_stream = stream;
        framing->payload_left = big_endian_u32(framing->header);
        framing->header_length = 0;
    }
    return 0;
}

int guest_port_relay(int port, int requests_out, unsigned char *carry, size_t carry_capacity, size_t *carry_length) {
    unsigned char buffer[relay_chunk];
    relay_framing framing;
    memset(&framing, 0, sizeof framing);
    int status = 0;
    // What the previous session handed on comes first (it is at most one read plus a header).
    if (*carry_length > 0) {
        unsigned char handed[relay_chunk + header_size];
        size_t handed_length = *carry_length;
        memcpy(handed, carry, handed_length);
        *carry_length = 0;
        status = relay_forward(&framing, requests_out, handed, handed_length, carry, carry_capacity, carry_length);
    }
    while (status == 0) {
        // The pipe's write end polls as POLLERR once the connection closed its read end.
        struct pollfd fds[2] = {{.fd = port, .events = POLLIN}, {.fd = requests_out, .events = 0}};
        int ready = poll(fds, 2, relay_recheck_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) return GUEST_RELAY_AGENT_CLOSED;
        int hung_up = (fds[0].revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
        // A timeout reads too: the port is non-blocking, so an empty one answers EAGAIN.
        if (ready > 0 && !hung_up && !(fds[0].revents & POLLIN)) continue;
        ssize_t n = read(port, buffer, sizeof buffer);
        if (n == 0) break;
        if (n < 0) {
            // After a hang-up, nothing left to read (or a next host already connected): done.
            if (hung_up && errno == EAGAIN) break;
            if (errno == EAGAIN || errno == EINTR) continue;
            return -errno;
        }
        // What the port held at the hang-up is still this session's, up to a next host's first request.
        status = relay_forward(&framing, requests_out, buffer, (size_t)n, carry, carry_capacity, carry_length);
    }
    if (status == -EPIPE) return GUEST_RELAY_AGENT_CLOSED;
    if (status != 0) return status;
    // The host hung up. A header begun but not complete may be the next host's: it goes on too.
    if (framing.header_length > 0 && framing.header_length <= carry_capacity) {
        memcpy(carry, framing.header, framing.header_length);
        *carry_length = framing.header_length;
    }
    return GUEST_RELAY_HOST_GONE;
}
