/**
 * Egress through the host: where a sandbox without a network device may connect, decided on the
 * host for each connection ({@link dev.agentvm.network.egress.EgressPolicy}), and what its TLS
 * ClientHello names ({@link dev.agentvm.network.egress.ClientHello}). Issue 17; the proxy that
 * carries connections over the agent channel is not built yet.
 */
package dev.agentvm.network.egress;
