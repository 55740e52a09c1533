/**
 * Guest networking: {@code NetworkMode}, libvirt networks, nwfilter allow-lists and race-free
 * MAC/IP allocation. Empty until the network issue lands: the module exists so that the dependency
 * direction (network -> core) is fixed from the start.
 */
package dev.agentvm.network;
