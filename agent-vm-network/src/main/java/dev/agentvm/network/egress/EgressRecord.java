package dev.agentvm.network.egress;

import java.time.Duration;
import java.time.Instant;

/**
 * One connection a guest asked for, and what became of it: the audit record of egress.
 *
 * @param stream the stream's number within its proxy
 * @param started when the guest connected to its proxy
 * @param host the destination as asked for (cleaned for logs; {@code ?} if the request was not
 *     understood)
 * @param port the destination port (0 if not understood)
 * @param address the address connected to, or empty
 * @param allowed whether the policy allowed it
 * @param rule the rule that allowed it, or the check that refused it ({@code request} for a request
 *     the proxy did not accept, {@code limit} for a limit)
 * @param reason why, in words
 * @param bytesOut bytes from the guest to the server
 * @param bytesIn bytes from the server to the guest
 * @param duration from the guest's connect to the end
 * @param end how it ended: {@code closed} (both sides finished), or what cut it short
 */
public record EgressRecord(
    int stream,
    Instant started,
    String host,
    int port,
    String address,
    boolean allowed,
    String rule,
    String reason,
    long bytesOut,
    long bytesIn,
    Duration duration,
    String end) {}
