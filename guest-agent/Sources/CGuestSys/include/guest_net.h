// The guest's network configuration through rtnetlink (NETLINK_ROUTE): the guest has no `ip`.
// Each call opens its own netlink socket, sends one request with NLM_F_ACK and waits for the
// kernel's answer. Returns 0, or a positive errno; when the kernel attached an extended-ack message
// ("Nexthop has invalid gateway"), it is copied into `detail` (always NUL-terminated; may be empty).
#ifndef GUEST_NET_H
#define GUEST_NET_H

#include <stddef.h>

/// RTM_NEWLINK on an existing link: a new name (NULL or "" = keep) and MTU (0 = keep).
/// Linux refuses to rename a link that is up (EBUSY): set it down first.
int guest_net_link_set(int ifindex, const char *name, unsigned int mtu, char *detail, size_t detail_len);

/// RTM_NEWLINK on an existing link: a new hardware address (IFLA_ADDRESS), `address_len` bytes: the
/// link's address length (6 for Ethernet; shorter is EINVAL). Ethernet refuses a multicast or zero
/// address (EADDRNOTAVAIL). Set the link down first: not every driver changes it on a running link.
int guest_net_link_set_address(int ifindex, const unsigned char *address, size_t address_len,
                               char *detail, size_t detail_len);

/// RTM_NEWLINK on an existing link: IFF_UP set (up != 0) or cleared.
int guest_net_link_up(int ifindex, int up, char *detail, size_t detail_len);

/// RTM_NEWADDR (NLM_F_CREATE|NLM_F_EXCL): `address` is 4 (AF_INET) or 16 (AF_INET6) bytes in
/// network order. IPv4 gets the broadcast address of its prefix (as `ip addr add ... brd +`);
/// IPv6 is added without duplicate address detection (IFA_F_NODAD), so it is usable at once.
int guest_net_addr_add(int ifindex, int family, const unsigned char *address, unsigned int prefix_len,
                       char *detail, size_t detail_len);

/// RTM_NEWROUTE (NLM_F_CREATE|NLM_F_EXCL) in the main table, unicast, protocol "boot".
/// `destination` may be NULL for prefix_len 0 (default route); `gateway` NULL = none;
/// ifindex 0 = no device; scope is RT_SCOPE_UNIVERSE (0), RT_SCOPE_LINK (253) or RT_SCOPE_HOST (254).
int guest_net_route_add(int family, const unsigned char *destination, unsigned int prefix_len,
                        const unsigned char *gateway, int ifindex, unsigned char scope,
                        char *detail, size_t detail_len);

#endif
