// rtnetlink requests for the guest's network (see include/guest_net.h).
#define _GNU_SOURCE
#include "guest_net.h"

#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED 0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif
#ifndef MAX_ADDR_LEN
#define MAX_ADDR_LEN 32 // linux/netdevice.h: the longest hardware address
#endif

/// One request: header, family header, attributes.
typedef struct guest_nl_request {
    union {
        struct nlmsghdr header;
        char buffer[512];
    };
} guest_nl_request;

static void *guest_nl_begin(guest_nl_request *req, uint16_t type, uint16_t flags, size_t family_len) {
    memset(req, 0, sizeof(*req));
    req->header.nlmsg_len = (uint32_t)NLMSG_LENGTH(family_len);
    req->header.nlmsg_type = type;
    req->header.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
    return NLMSG_DATA(&req->header);
}

/// Appends an attribute; the buffer is sized for every request here, so overflow is a bug (EMSGSIZE).
static int guest_nl_attr(guest_nl_request *req, uint16_t type, const void *data, size_t len) {
    size_t offset = NLMSG_ALIGN(req->header.nlmsg_len);
    size_t total = RTA_LENGTH(len);
    if (offset + RTA_ALIGN(total) > sizeof(req->buffer)) return EMSGSIZE;
    struct rtattr *attr = (struct rtattr *)(req->buffer + offset);
    attr->rta_type = type;
    attr->rta_len = (unsigned short)total;
    if (len > 0) memcpy(RTA_DATA(attr), data, len);
    req->header.nlmsg_len = (uint32_t)(offset + RTA_ALIGN(total));
    return 0;
}

static void guest_nl_detail(const struct nlmsghdr *answer, const struct nlmsgerr *error, size_t available,
                            char *detail, size_t detail_len) {
    if (!(answer->nlmsg_flags & NLM_F_ACK_TLVS)) return;
    size_t offset = sizeof(*error);
    if (!(answer->nlmsg_flags & NLM_F_CAPPED)) offset += error->msg.nlmsg_len - NLMSG_HDRLEN;
    while (offset + sizeof(struct nlattr) <= available) {
        const struct nlattr *attr = (const struct nlattr *)((const char *)error + offset);
        if (attr->nla_len < sizeof(struct nlattr) || offset + attr->nla_len > available) return;
        if ((attr->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
            size_t len = attr->nla_len - sizeof(struct nlattr);
            const char *text = (const char *)attr + sizeof(struct nlattr);
            size_t n = strnlen(text, len);
            if (n >= detail_len) n = detail_len - 1;
            memcpy(detail, text, n);
            detail[n] = '\0';
            return;
        }
        offset += NLA_ALIGN(attr->nla_len);
    }
}

/// Sends the request and returns the errno of the kernel's answer (0 = done).
static int guest_nl_talk(guest_nl_request *req, char *detail, size_t detail_len) {
    static uint32_t sequence;
    if (detail != NULL && detail_len > 0) detail[0] = '\0';
    else detail_len = 0;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) return errno;
    int one = 1;
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one)); // older kernels: no detail
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    struct timeval timeout = {5, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    req->header.nlmsg_seq = __atomic_add_fetch(&sequence, 1, __ATOMIC_RELAXED);
    struct sockaddr_nl kernel;
    memset(&kernel, 0, sizeof(kernel));
    kernel.nl_family = AF_NETLINK;
    ssize_t sent;
    do {
        sent = sendto(fd, req->buffer, req->header.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
        int err = errno;
        close(fd);
        return err;
    }
    char answer[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (;;) {
        ssize_t n = recv(fd, answer, sizeof(answer), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno == EAGAIN ? ETIMEDOUT : errno;
            close(fd);
            return err;
        }
        size_t left = (size_t)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)answer; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != req->header.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR) continue;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
                close(fd);
                return EBADMSG;
            }
            const struct nlmsgerr *error = NLMSG_DATA(h);
            int err = -error->error;
            if (err != 0 && detail_len > 0) guest_nl_detail(h, error, h->nlmsg_len - NLMSG_HDRLEN, detail, detail_len);
            close(fd);
            return err;
        }
    }
}

int guest_net_link_set(int ifindex, const char *name, unsigned int mtu, char *detail, size_t detail_len) {
    guest_nl_request req;
    struct ifinfomsg *info = guest_nl_begin(&req, RTM_NEWLINK, 0, sizeof(*info));
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = ifindex;
    int err = 0;
    if (name != NULL && name[0] != '\0') {
        if (strlen(name) >= IFNAMSIZ) return EINVAL;
        err = guest_nl_attr(&req, IFLA_IFNAME, name, strlen(name) + 1);
    }
    if (err == 0 && mtu != 0) {
        uint32_t value = mtu;
        err = guest_nl_attr(&req, IFLA_MTU, &value, sizeof(value));
    }
    return err != 0 ? err : guest_nl_talk(&req, detail, detail_len);
}

int guest_net_link_set_address(int ifindex, const unsigned char *address, size_t address_len,
                               char *detail, size_t detail_len) {
    if (address == NULL || address_len == 0 || address_len > MAX_ADDR_LEN) return EINVAL;
    guest_nl_request req;
    struct ifinfomsg *info = guest_nl_begin(&req, RTM_NEWLINK, 0, sizeof(*info));
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = ifindex;
    int err = guest_nl_attr(&req, IFLA_ADDRESS, address, address_len);
    return err != 0 ? err : guest_nl_talk(&req, detail, detail_len);
}

int guest_net_link_up(int ifindex, int up, char *detail, size_t detail_len) {
    guest_nl_request req;
    struct ifinfomsg *info = guest_nl_begin(&req, RTM_NEWLINK, 0, sizeof(*info));
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = ifindex;
    info->ifi_change = IFF_UP;
    info->ifi_flags = up ? IFF_UP : 0;
    return guest_nl_talk(&req, detail, detail_len);
}

static size_t guest_net_address_len(int family) {
    return family == AF_INET ? 4 : family == AF_INET6 ? 16 : 0;
}

int guest_net_addr_add(int ifindex, int family, const unsigned char *address, unsigned int prefix_len,
                       char *detail, size_t detail_len) {
    size_t len = guest_net_address_len(family);
    if (len == 0 || address == NULL || prefix_len > len * 8) return EINVAL;
    guest_nl_request req;
    struct ifaddrmsg *info = guest_nl_begin(&req, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(*info));
    info->ifa_family = (unsigned char)family;
    info->ifa_prefixlen = (unsigned char)prefix_len;
    info->ifa_index = (unsigned int)ifindex;
    info->ifa_scope = RT_SCOPE_UNIVERSE;
    if (family == AF_INET6) info->ifa_flags = IFA_F_NODAD;
    int err = guest_nl_attr(&req, IFA_LOCAL, address, len);
    if (err == 0) err = guest_nl_attr(&req, IFA_ADDRESS, address, len);
    if (err == 0 && family == AF_INET && prefix_len < 31) {
        unsigned char broadcast[4];
        for (size_t i = 0; i < 4; i++) {
            unsigned int bits = prefix_len > i * 8 ? prefix_len - (unsigned int)i * 8 : 0;
            unsigned char host = bits >= 8 ? 0 : (unsigned char)(0xffu >> bits);
            broadcast[i] = address[i] | host;
        }
        err = guest_nl_attr(&req, IFA_BROADCAST, broadcast, 4);
    }
    return err != 0 ? err : guest_nl_talk(&req, detail, detail_len);
}

int guest_net_route_add(int family, const unsigned char *destination, unsigned int prefix_len,
                        const unsigned char *gateway, int ifindex, unsigned char scope,
                        char *detail, size_t detail_len) {
    size_t len = guest_net_address_len(family);
    if (len == 0 || prefix_len > len * 8 || (prefix_len > 0 && destination == NULL)) return EINVAL;
    guest_nl_request req;
    struct rtmsg *info = guest_nl_begin(&req, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(*info));
    info->rtm_family = (unsigned char)family;
    info->rtm_dst_len = (unsigned char)prefix_len;
    info->rtm_table = RT_TABLE_MAIN;
    info->rtm_protocol = RTPROT_BOOT;
    info->rtm_scope = scope;
    info->rtm_type = RTN_UNICAST;
    int err = 0;
    if (prefix_len > 0) err = guest_nl_attr(&req, RTA_DST, destination, len);
    if (err == 0 && gateway != NULL) err = guest_nl_attr(&req, RTA_GATEWAY, gateway, len);
    if (err == 0 && ifindex > 0) {
        uint32_t oif = (uint32_t)ifindex;
        err = guest_nl_attr(&req, RTA_OIF, &oif, sizeof(oif));
    }
    return err != 0 ? err : guest_nl_talk(&req, detail, detail_len);
}
