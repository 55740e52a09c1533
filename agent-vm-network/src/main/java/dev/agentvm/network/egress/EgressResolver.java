package dev.agentvm.network.egress;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;

/**
 * Turns a name into addresses, on the host. Pluggable so that tests can map names to servers they
 * run, and deployments can use their own DNS; the policy checks whatever it returns.
 */
@FunctionalInterface
public interface EgressResolver {
  /** The JVM's resolver ({@link InetAddress#getAllByName}). */
  EgressResolver SYSTEM = name -> List.of(InetAddress.getAllByName(name));

  /**
   * The addresses of {@code name}.
   *
   * @throws UnknownHostException if it has none
   */
  List<InetAddress> resolve(String name) throws UnknownHostException;
}
