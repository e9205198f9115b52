// Tests for guest_net (guest-agent/Sources/CGuestSys/guest_net.c): rtnetlink requests, run as root
// in a network namespace of their own (unshare), on a veth pair made with iproute2's `ip`.
//
//   make -C guest-agent/tests-c test
//
// Prints PASS/FAIL per case; exits non-zero when a case failed.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest_net.h"
#include "check.h"


/// Output of a shell command (iproute2 reads the state back).
static void capture(const char *command, char *out, size_t len) {
    out[0] = '\0';
    FILE *pipe = popen(command, "r");
    if (pipe == NULL) return;
    size_t n = fread(out, 1, len - 1, pipe);
    out[n] = '\0';
    pclose(pipe);
}

int main(void) {
    if (geteuid() != 0) {
        fprintf(stderr, "test_net must run as root\n");
        return 2;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        perror("unshare(CLONE_NEWNET)");
        return 2;
    }
    char detail[256], out[4096];
    unsigned char v4[4], v4gw[4], v4net[4], v6[16], v6gw[16];

    int lo = (int)if_nametoindex("lo");
    check(guest_net_link_up(lo, 1, detail, sizeof(detail)) == 0, "lo up");
    capture("ip -o link show lo", out, sizeof(out));
    check(strstr(out, "UP") != NULL, "lo is not up: %s", out);

    if (system("ip link add veth0 type veth peer name veth1") != 0) {
        fprintf(stderr, "cannot create a veth pair\n");
        return 2;
    }
    int index = (int)if_nametoindex("veth0");
    int err = guest_net_link_set(index, "pod0", 1400, detail, sizeof(detail));
    check(err == 0, "rename + mtu: %s %s", strerror(err), detail);
    check(if_nametoindex("pod0") == (unsigned)index, "pod0 has another index");
    const unsigned char mac[6] = {0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc}, multicast[6] = {0x01, 0x00, 0x5e, 0, 0, 1};
    err = guest_net_link_set_address(index, mac, sizeof(mac), detail, sizeof(detail));
    check(err == 0, "address 02:00:00:aa:bb:cc: %s %s", strerror(err), detail);
    err = guest_net_link_set_address(index, mac, 4, detail, sizeof(detail));
    check(err == EINVAL, "a 4-byte address: %s (%s)", strerror(err), detail);
    err = guest_net_link_set_address(index, multicast, sizeof(multicast), detail, sizeof(detail));
    check(err == EADDRNOTAVAIL, "a multicast address: %s (%s)", strerror(err), detail);
    err = guest_net_link_set_address(9999, mac, sizeof(mac), detail, sizeof(detail));
    check(err == ENODEV, "address of an unknown ifindex: %s", strerror(err));
    inet_pton(AF_INET, "10.9.0.5", v4);
    inet_pton(AF_INET6, "fd00::5", v6);
    err = guest_net_addr_add(index, AF_INET, v4, 24, detail, sizeof(detail));
    check(err == 0, "add 10.9.0.5/24: %s %s", strerror(err), detail);
    err = guest_net_addr_add(index, AF_INET6, v6, 64, detail, sizeof(detail));
    check(err == 0, "add fd00::5/64: %s %s", strerror(err), detail);
    err = guest_net_addr_add(index, AF_INET, v4, 24, detail, sizeof(detail));
    check(err == EEXIST, "adding 10.9.0.5/24 twice: %s", strerror(err));
    check(guest_net_link_up(index, 1, detail, sizeof(detail)) == 0, "pod0 up");
    check(guest_net_link_up((int)if_nametoindex("veth1"), 1, detail, sizeof(detail)) == 0, "veth1 up");

    inet_pton(AF_INET, "10.9.0.1", v4gw);
    inet_pton(AF_INET, "10.10.0.0", v4net);
    inet_pton(AF_INET6, "fd00::1", v6gw);
    err = guest_net_route_add(AF_INET, v4net, 16, NULL, index, 253, detail, sizeof(detail));
    check(err == 0, "route 10.10.0.0/16 dev pod0: %s %s", strerror(err), detail);
    err = guest_net_route_add(AF_INET, NULL, 0, v4gw, 0, 0, detail, sizeof(detail));
    check(err == 0, "default via 10.9.0.1: %s %s", strerror(err), detail);
    err = guest_net_route_add(AF_INET6, NULL, 0, v6gw, index, 0, detail, sizeof(detail));
    check(err == 0, "default via fd00::1 dev pod0: %s %s", strerror(err), detail);
    err = guest_net_route_add(AF_INET, NULL, 0, v4gw, 0, 0, detail, sizeof(detail));
    check(err == EEXIST, "default route twice: %s", strerror(err));
    unsigned char unreachable[4];
    inet_pton(AF_INET, "192.0.2.1", unreachable);
    err = guest_net_route_add(AF_INET, v4net, 24, unreachable, 0, 0, detail, sizeof(detail));
    check(err != 0, "a gateway off every link was accepted");
    printf("    unreachable gateway: %s (%s)\n", strerror(err), detail);

    capture("ip -o addr show pod0; ip route; ip -6 route; ip -o link show pod0", out, sizeof(out));
    printf("%s", out);
    check(strstr(out, "inet 10.9.0.5/24 brd 10.9.0.255") != NULL, "IPv4 address with broadcast");
    check(strstr(out, "inet6 fd00::5/64") != NULL, "IPv6 address");
    check(strstr(out, "default via 10.9.0.1 dev pod0 \n") != NULL, "IPv4 default route");
    check(strstr(out, "10.10.0.0/16 dev pod0 scope link \n") != NULL, "link route");
    check(strstr(out, "default via fd00::1 dev pod0 metric 1024") != NULL, "IPv6 default route");
    check(strstr(out, "<BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 ") != NULL, "mtu 1400, up");
    check(strstr(out, "link/ether 02:00:00:aa:bb:cc ") != NULL, "address 02:00:00:aa:bb:cc");

    err = guest_net_link_set(9999, NULL, 1500, detail, sizeof(detail));
    check(err == ENODEV, "unknown ifindex: %s", strerror(err));
    err = guest_net_link_set(index, NULL, 10, detail, sizeof(detail));
    check(err == EINVAL, "mtu 10: %s (%s)", strerror(err), detail);
    printf("    mtu 10: %s (%s)\n", strerror(err), detail);

    printf("%s guest_net: rtnetlink link, hardware address, address and route requests\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
