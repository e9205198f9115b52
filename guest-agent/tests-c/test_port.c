// Tests for guest_port_wait_host (guest-agent/Sources/CGuestSys/guest_sys.c). A virtio-serial port
// needs a VM (Tests/GuestTests covers the real one); here the read end of a FIFO stands in for it:
// like the port without a host, it polls as HUP once its writer has gone, and opening a new writer
// wakes its wait queue. Unlike the port, a FIFO read end never polls as OUT, so the writer also writes
// a byte: the "host connects and sends nothing yet" edge (EPOLLOUT on the port) is not covered here.
//
//   make -C guest-agent/tests-c test
//
// Prints the failed checks; exits non-zero when one failed. Needs no root.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest_sys.h"
#include "check.h"


static long long now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/// CPU time this thread has used.
static long long cpu_us(void) {
    struct timespec used;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used);
    return (long long)used.tv_sec * 1000000 + used.tv_nsec / 1000;
}

static char fifo[64];

/// Opens the FIFO's write end ("the host connects") and writes one byte.
static int connect_writer(void) {
    int writer = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (writer >= 0 && write(writer, "x", 1) != 1) {
        close(writer);
        return -1;
    }
    return writer;
}

/// Leaves the reader as the port is without a host: its writer has gone and nothing is left to read.
static void disconnect_writer(int reader, int writer) {
    close(writer);
    char buffer[16];
    while (read(reader, buffer, sizeof buffer) > 0) {}
}

struct delayed_writer {
    int delay_us;
    int fd;
};

static void *connect_later(void *context) {
    struct delayed_writer *writer = context;
    if (writer->delay_us > 0) usleep((useconds_t)writer->delay_us);
    writer->fd = connect_writer();
    return NULL;
}

int main(void) {
    alarm(60); // a missed wakeup under "no limit" must fail the test, not hang it
    snprintf(fifo, sizeof fifo, "/tmp/test_port.XXXXXX");
    if (mkdtemp(fifo) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    char directory[64];
    snprintf(directory, sizeof directory, "%s", fifo);
    strcat(fifo, "/port");
    if (mkfifo(fifo, 0600) != 0) {
        perror("mkfifo");
        return 2;
    }
    int reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int writer = connect_writer();
    if (reader < 0 || writer < 0) {
        perror("open fifo");
        return 2;
    }

    // Connected: answers at once.
    long long started = now_ms();
    int result = guest_port_wait_host(reader, 5000);
    check(result == 1, "connected: %d", result);
    check(now_ms() - started < 1000, "connected took %lld ms", now_ms() - started);

    // Nobody connects: times out, having slept rather than polled the HUP over and over.
    disconnect_writer(reader, writer);
    started = now_ms();
    long long cpu = cpu_us();
    result = guest_port_wait_host(reader, 500);
    long long elapsed = now_ms() - started;
    cpu = cpu_us() - cpu;
    check(result == 0, "no writer: %d", result);
    check(elapsed >= 500, "timed out after %lld ms", elapsed);
    check(cpu < 50 * 1000, "waiting 500 ms used %lld us of CPU", cpu);

    // A writer comes while it waits: woken by the wakeup, long before the timeout.
    struct delayed_writer later = {.delay_us = 200 * 1000, .fd = -1};
    pthread_t thread;
    pthread_create(&thread, NULL, connect_later, &later);
    started = now_ms();
    result = guest_port_wait_host(reader, 10000);
    elapsed = now_ms() - started;
    pthread_join(thread, NULL);
    check(result == 1, "writer after 200 ms: %d", result);
    check(elapsed < 5000, "writer after 200 ms: noticed after %lld ms", elapsed);
    disconnect_writer(reader, later.fd);

    // Writers that come at once or within a few ms, around registration and the first check: none may
    // be missed (a miss would show as a wait until the timeout).
    int slow = 0;
    for (int round = 0; round < 200; round++) {
        later = (struct delayed_writer){.delay_us = (round * 37) % 3000, .fd = -1};
        pthread_create(&thread, NULL, connect_later, &later);
        started = now_ms();
        result = guest_port_wait_host(reader, 3000);
        elapsed = now_ms() - started;
        pthread_join(thread, NULL);
        check(result == 1, "round %d: %d", round, result);
        if (elapsed >= 1500) slow++;
        disconnect_writer(reader, later.fd);
    }
    check(slow == 0, "%d of 200 quick writers were noticed only at the timeout", slow);

    // No limit (-1) still returns when the writer comes.
    later = (struct delayed_writer){.delay_us = 50 * 1000, .fd = -1};
    pthread_create(&thread, NULL, connect_later, &later);
    result = guest_port_wait_host(reader, -1);
    pthread_join(thread, NULL);
    check(result == 1, "no limit: %d", result);
    disconnect_writer(reader, later.fd);

    // A bad descriptor is an error, not "connected".
    check(guest_port_wait_host(-1, 100) == -EBADF, "fd -1: %d", guest_port_wait_host(-1, 100));

    close(reader);
    unlink(fifo);
    rmdir(directory);
    printf("test_port: %s\n", failures == 0 ? "PASS" : "FAIL");
    return failures == 0 ? 0 : 1;
}
