import AgentAPI
import Hypervisor
import SwiftKataConfig

/// The KVM boot probe of a configuration: its pod VM, without share or NIC, booted under KVM until
/// the agent's first Health reply (`KVMBootProbe` with `AgentReadiness`).
public enum KVMProbe {
    public static func boot(
        kernel: String, image: GuestImage, hypervisor: Configuration.HypervisorSection = Configuration().hypervisor, timeout: Duration = .seconds(5)
    ) async -> (ok: Bool, detail: String) {
        await KVMBootProbe.boot(
            timeout: timeout,
            describe: { directory in
                VMDescription(
                    configuration: hypervisor, owner: .init(podID: "kvm-probe", namespace: "swiftkata"), accelerator: .kvm,
                    kernel: kernel, image: image,
                    agentChannel: .virtioSerial(socketPath: "\(directory)/agent.sock", name: AgentProtocol.serialPortName),
                    consoleLog: "\(directory)/console.log")
            },
            waitForAgent: { socket, deadline, isAlive in
                switch await AgentReadiness.waitForHealth(socketPath: socket, deadline: deadline, isAlive: isAlive) {
                case .success: nil
                case .failure(let notReady): notReady.description
                }
            })
    }
}
