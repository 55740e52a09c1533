package dev.agentvm.guest.agent;

import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@link GuestAgentTest} with the agent's native library loaded, as in the micro image: the serving
 * thread reads the port (here a FIFO) itself, and a frame that stops half-way is bounded by {@code
 * poll}, not by a reader thread's queue.
 */
@ExtendWith(NativeLibrary.class)
class GuestAgentNativeTest extends GuestAgentTest {}
