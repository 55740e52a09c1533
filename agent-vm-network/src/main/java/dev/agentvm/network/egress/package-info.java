/**
 * Egress through the host: where a sandbox without a network device may connect, decided on the
 * host for each connection ({@link dev.agentvm.network.egress.EgressPolicy}), the proxy that
 * carries the guest's connections over the agent channel ({@link
 * dev.agentvm.network.egress.EgressProxy}), and credentials the guest uses without holding them
 * ({@link dev.agentvm.network.egress.EgressSecret}, {@link dev.agentvm.network.egress.EgressCa}).
 */
package dev.agentvm.network.egress;
