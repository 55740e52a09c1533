package dev.agentvm.guest.agent;

import org.junit.jupiter.api.extension.ExtendWith;

/**
 * {@link GuestAgentErrorsTest}'s refusals with the agent's native library loaded, as in the micro
 * image: a command is looked up by the library first, and the Java lookup only names what is wrong.
 */
@ExtendWith(NativeLibrary.class)
class GuestAgentErrorsNativeTest extends GuestAgentErrorsTest {}
