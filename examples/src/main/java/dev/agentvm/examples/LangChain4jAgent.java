package dev.agentvm.examples;

import dev.agentvm.core.LibvirtConnection;
import dev.agentvm.execution.sandbox.SandboxSpec;
import dev.agentvm.execution.sandbox.Sandboxes;
import dev.agentvm.image.MicroImage;
import dev.agentvm.image.MicroImageBuilder;
import dev.agentvm.langchain4j.SandboxCodeTool;
import dev.langchain4j.agent.tool.ToolExecutionRequest;
import dev.langchain4j.data.message.AiMessage;
import dev.langchain4j.data.message.ChatMessage;
import dev.langchain4j.data.message.ToolExecutionResultMessage;
import dev.langchain4j.memory.chat.MessageWindowChatMemory;
import dev.langchain4j.model.chat.ChatModel;
import dev.langchain4j.model.chat.request.ChatRequest;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.service.AiServices;
import dev.langchain4j.service.MemoryId;
import dev.langchain4j.service.UserMessage;
import java.util.List;

/**
 * A LangChain4j agent whose code runs in agent-vm sandboxes: an {@code AiServices} assistant with
 * {@link SandboxCodeTool}, one sandbox per conversation. The chat model is scripted (no network, no
 * API key): asked a question, it writes a Python program, reads the tool's answer and replies with
 * it; asked again in the same conversation, it reads the file its first program left. Swap in any
 * LangChain4j {@code ChatModel} (OpenAI, Anthropic, Ollama) and the rest stays as it is.
 */
public final class LangChain4jAgent {
  /** The assistant the application talks to. */
  public interface Assistant {
    String chat(@MemoryId String conversation, @UserMessage String message);
  }

  /**
   * A chat model that plays a coding agent: its first turn calls the tool with {@code program}, its
   * second answers with what the tool returned.
   */
  static final class ScriptedCoder implements ChatModel {
    private final List<String> programs;
    private int turn;

    ScriptedCoder(List<String> programs) {
      this.programs = List.copyOf(programs);
    }

    @Override
    public ChatResponse doChat(ChatRequest request) {
      List<ChatMessage> messages = request.messages();
      ChatMessage last = messages.get(messages.size() - 1);
      AiMessage reply;
      if (last instanceof ToolExecutionResultMessage result) {
        reply = AiMessage.from("The program ran in a sandbox. " + result.text().strip());
      } else {
        String program = programs.get(Math.min(turn++, programs.size() - 1));
        reply =
            AiMessage.from(
                ToolExecutionRequest.builder()
                    .id("call-" + turn)
                    .name("runCode")
                    .arguments("{\"code\": " + jsonString(program) + "}")
                    .build());
      }
      return ChatResponse.builder().aiMessage(reply).build();
    }

    private static String jsonString(String s) {
      StringBuilder b = new StringBuilder("\"");
      for (int i = 0; i < s.length(); i++) {
        char c = s.charAt(i);
        switch (c) {
          case '"' -> b.append("\\\"");
          case '\\' -> b.append("\\\\");
          case '\n' -> b.append("\\n");
          default -> b.append(c);
        }
      }
      return b.append('"').toString();
    }
  }

  /** The two answers of one conversation. */
  public static List<String> run(LibvirtConnection conn) throws java.io.IOException {
    MicroImage python = MicroImageBuilder.create().packages(MicroImage.PYTHON).build();
    ChatModel model =
        new ScriptedCoder(
            List.of(
                """
                import statistics
                xs = [3, 1, 4, 1, 5, 9, 2, 6]
                open('/workspace/mean.txt', 'w').write(str(statistics.mean(xs)))
                print('mean', statistics.mean(xs))
                """,
                "print('remembered', open('/workspace/mean.txt').read())"));
    try (Sandboxes sandboxes = Sandboxes.open(conn);
        SandboxCodeTool tool =
            SandboxCodeTool.builder(sandboxes)
                .spec(SandboxSpec.defaults().withImage(python).withLabel("example", "langchain4j"))
                .perConversation(true)
                .build()) {
      Assistant assistant =
          AiServices.builder(Assistant.class)
              .chatModel(model)
              .tools(tool)
              .chatMemoryProvider(id -> MessageWindowChatMemory.withMaxMessages(20))
              .build();
      String first = assistant.chat("demo", "What is the mean of 3 1 4 1 5 9 2 6?");
      String second = assistant.chat("demo", "And what did you write down?");
      return List.of(first, second);
    }
  }

  public static void main(String[] args) throws Exception {
    try (LibvirtConnection conn = LibvirtConnection.open()) {
      for (String answer : run(conn)) {
        System.out.println(answer);
        System.out.println();
      }
    }
  }
}
