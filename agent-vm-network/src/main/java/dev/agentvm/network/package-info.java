/**
 * Guest networking: {@link dev.agentvm.network.NetworkMode}, agent-vm's own libvirt networks and
 * nwfilter allow-lists ({@link dev.agentvm.network.Networks}), and race-free MAC/IP reservations
 * ({@link dev.agentvm.network.IpAllocator}).
 */
package dev.agentvm.network;
