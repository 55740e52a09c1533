package dev.agentvm.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.agentvm.core.RealLibvirtTest;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The LangChain4j example end to end: AiServices, the tool, a real sandbox per conversation. */
class LangChain4jAgentIT extends RealLibvirtTest {
  @Test
  void theAssistantAnswersFromCodeThatRanInItsSandbox() throws Exception {
    List<String> answers = LangChain4jAgent.run(conn);
    assertEquals(2, answers.size());
    assertTrue(answers.get(0).contains("mean 3.875"), answers.get(0));
    assertTrue(
        answers.get(0).contains("mean.txt"), "the file it wrote is listed: " + answers.get(0));
    assertTrue(answers.get(1).contains("remembered 3.875"), "same sandbox: " + answers.get(1));
  }
}
