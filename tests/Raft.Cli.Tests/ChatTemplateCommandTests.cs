using System.Text.Json;
using Raft.Model.Tokenization;

namespace Raft.Cli.Tests;

/// <summary><c>raft chat-template</c>: the model folder's own template (here a byte model's), the fallback, and refusals.</summary>
public class ChatTemplateCommandTests : CliHarness
{
    // The built-in raft format written as a Jinja template, so that its output can be checked against ChatTemplate.Raft.
    private const string RaftJinja =
        "<|bos|>{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}\n";

    private static readonly ChatMessage[] Conversation =
        [ChatMessage.System("Be brief."), ChatMessage.User("What is 2+2?"), ChatMessage.Assistant("4"), ChatMessage.User("And 3+3?"), ChatMessage.Assistant("six")];

    private string Messages(params ChatMessage[] messages)
    {
        string path = PathOf("messages.json");
        File.WriteAllText(path, JsonSerializer.Serialize(messages.Select(m => new { role = m.Role, content = m.Content })));
        return path;
    }

    private static (string Text, int[] Ids, int[] Mask) Parse(CliResult r) =>
        (r.Json.GetProperty("text").GetString()!, r.Json.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
         r.Json.GetProperty("assistant_mask").EnumerateArray().Select(e => e.GetInt32()).ToArray());

    [Fact]
    public void ModelTemplate_PrintsTextIdsAndMask()
    {
        string model = PipelineFixtures.Checkpoint(PathOf("model"));
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"), RaftJinja);
        foreach (bool gen in new[] { false, true })
        {
            var conv = gen ? Conversation[..^1] : Conversation;
            var args = new List<string> { "chat-template", "--model", model, "--messages", Messages(conv) };
            if (gen) args.Add("--add-generation-prompt");
            var r = Raft([.. args]);
            Assert.True(r.Code == 0, r.Stderr);
            Assert.Contains($"chat template: chat_template.jinja of {model}", r.Stderr, StringComparison.Ordinal);
            var (text, ids, mask) = Parse(r);
            var builtin = ChatTemplate.Raft.Encode(ByteTokenizer.Instance, conv, gen);
            Assert.Equal(ChatTemplate.Raft.Render(conv, gen), text);
            Assert.Equal(builtin.Ids, ids);
            Assert.Equal(builtin.AssistantMask.Select(b => b ? 1 : 0), mask);
            Assert.Equal(conv.Count(m => m.Role == "assistant"), CountRuns(mask));
        }
    }

    private static int CountRuns(int[] mask) => mask.Where((m, i) => m == 1 && (i == 0 || mask[i - 1] == 0)).Count();

    [Fact]
    public void Sft_TrainsThroughTheFoldersTemplateAndSaysSo()
    {
        string model = PipelineFixtures.Checkpoint(PathOf("model"));
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"), RaftJinja);
        string data = PipelineFixtures.Data(PathOf("data.jsonl"));
        var r = Raft("sft", "--model", model, "--data", data, "--out", PathOf("run"), "--threads", "1", "--steps", "1", "--batch-size", "2", "--warmup-steps", "1");
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains($"chat template: chat_template.jinja of {model}", r.Stderr, StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"), "{{ raise_exception('no system turns here') }}");
        r = Raft("sft", "--model", model, "--data", data, "--out", PathOf("run2"), "--threads", "1", "--steps", "1", "--batch-size", "2", "--warmup-steps", "1");
        Assert.Equal(2, r.Code);
        Assert.Contains("the chat template raised: no system turns here", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void FolderWithoutTemplate_UsesTheFallback()
    {
        string model = PipelineFixtures.Checkpoint(PathOf("model"));
        var r = Raft("chat-template", "--model", model, "--messages", Messages(Conversation));
        Assert.True(r.Code == 0, r.Stderr);
        Assert.Contains("chat template: fallback built-in raft", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(ChatTemplate.Raft.Encode(ByteTokenizer.Instance, Conversation).Ids, Parse(r).Ids);
    }

    [Fact]
    public void RaisingTemplate_ExitsTwoWithItsMessage()
    {
        string model = PipelineFixtures.Checkpoint(PathOf("model"));
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"),
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversations must start with a user turn') }}{% endif %}x");
        var r = Raft("chat-template", "--model", model, "--messages", Messages(ChatMessage.Assistant("hi")));
        Assert.Equal(2, r.Code);
        Assert.Contains($"chat_template.jinja of {model}: the chat template raised: Conversations must start with a user turn", r.Stderr, StringComparison.Ordinal);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void BadTemplateOrMessages_ExitTwoNamingThem()
    {
        string model = PipelineFixtures.Checkpoint(PathOf("model"));
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"), "{% if x %}unterminated");
        var r = Raft("chat-template", "--model", model, "--messages", Messages(ChatMessage.User("hi")));
        Assert.Equal(2, r.Code);
        Assert.Contains($"chat_template.jinja of {model}: the chat template does not parse", r.Stderr, StringComparison.Ordinal);

        File.Delete(Path.Combine(model, "chat_template.jinja"));
        string bad = PathOf("bad.json");
        File.WriteAllText(bad, "[{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": []}]");
        r = Raft("chat-template", "--model", model, "--messages", bad);
        Assert.Equal(2, r.Code);
        Assert.Contains($"--messages {bad}: messages[0] has key \"tool_calls\"", r.Stderr, StringComparison.Ordinal);
        File.WriteAllText(bad, "[{\"role\": \"user\", \"content\": 3}]");
        r = Raft("chat-template", "--model", model, "--messages", bad);
        Assert.Equal(2, r.Code);
        Assert.Contains("messages[0].content must be a string", r.Stderr, StringComparison.Ordinal);

        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}]}");
        r = Raft("chat-template", "--model", model, "--messages", Messages(ChatMessage.User("hi")));
        Assert.Equal(2, r.Code);
        Assert.Contains("chat_template lists templates \"tool_use\" but none named \"default\"", r.Stderr, StringComparison.Ordinal);
    }
}
