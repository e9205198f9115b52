/// Host programs the shim runs to carry a pod's CNI network into its VM (iproute2 and util-linux),
/// and its loopback to the port forwarder (iptables).
public enum PodNetworkTools {
    public static let ip = "/usr/sbin/ip"
    public static let tc = "/usr/sbin/tc"
    public static let nsenter = "/usr/bin/nsenter"
    public static let iptables = "/usr/sbin/iptables"
    public static let all = [ip, tc, nsenter, iptables]
}
