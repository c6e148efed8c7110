using System.Text;
using System.Text.Json;
using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// Assistant masks of the models' own templates with their real tokenizers: the ids are the whole rendered text's (as
/// Hugging Face's <c>apply_chat_template(tokenize=True)</c>), and the mask covers exactly the tokens that overlap each
/// assistant turn's content and its end-of-turn token (transformers' char_to_token rule for <c>{% generation %}</c>
/// spans). The reference mask is computed independently: the turn's span found by searching the rendered text for the
/// turn's header and the next end-of-turn token, the tokens' character ranges from their bytes in tokenizer.json.
/// </summary>
public class ChatTemplateMaskTests
{
    private sealed record Model(string Folder, ITokenizer Tokenizer, ChatTemplate Template, string Header, string EndOfTurn, Dictionary<int, byte[]> Bytes);

    private static readonly Dictionary<string, Model> Cache = new();

    private static Model Load(string folder, string tokenizerFolder, string header, string end)
    {
        lock (Cache)
        {
            if (Cache.TryGetValue(folder, out var m)) return m;
            var tok = TokenizerFiles.Load(tokenizerFolder, "tokenizer.json");
            var template = ChatTemplate.FromModelDirectory(TokenizerFiles.Require(folder, "tokenizer_config.json"))!;
            var bytes = new Dictionary<int, byte[]>();
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(TokenizerFiles.Dir(tokenizerFolder), "tokenizer.json")));
            foreach (var p in doc.RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject())
                if (ByteLevelAlphabet.TryGetBytes(p.Name, out byte[] b)) bytes[p.Value.GetInt32()] = b;
            foreach (var a in doc.RootElement.GetProperty("added_tokens").EnumerateArray())
                bytes[a.GetProperty("id").GetInt32()] = Encoding.UTF8.GetBytes(a.GetProperty("content").GetString()!);
            return Cache[folder] = new Model(folder, tok, template, header, end, bytes);
        }
    }

    private static Model Qwen25() => Load("qwen2_5", "qwen2_5", "<|im_start|>assistant\n", "<|im_end|>");
    private static Model Qwen3() => Load("qwen3", "qwen3", "<|im_start|>assistant\n", "<|im_end|>");
    private static Model Llama3() => Load("llama3", "llama3", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>");
    private static Model Llama31() => Load("llama3_1", "llama3", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>");

    // The reference: for the k-th assistant message, the text after the k-th assistant header up to and including the next
    // end-of-turn token; a token is masked when its bytes overlap one of those spans.
    private static bool[] ReferenceMask(Model m, string text, int[] ids, int assistantTurns)
    {
        var spans = new List<(int, int)>();
        int at = 0;
        for (int k = 0; k < assistantTurns; k++)
        {
            int h = text.IndexOf(m.Header, at, StringComparison.Ordinal);
            Assert.True(h >= 0, $"assistant header {k} not found");
            int s = h + m.Header.Length;
            int e = text.IndexOf(m.EndOfTurn, s, StringComparison.Ordinal) + m.EndOfTurn.Length;
            spans.Add((Encoding.UTF8.GetByteCount(text.AsSpan(0, s)), Encoding.UTF8.GetByteCount(text.AsSpan(0, e))));
            at = e;
        }
        var mask = new bool[ids.Length];
        int pos = 0;
        for (int t = 0; t < ids.Length; t++)
        {
            int len = m.Bytes[ids[t]].Length;
            mask[t] = spans.Any(sp => pos < sp.Item2 && pos + len > sp.Item1);
            pos += len;
        }
        Assert.Equal(Encoding.UTF8.GetByteCount(text), pos);
        return mask;
    }

    private static int CheckConversations(Model m)
    {
        int checkedTurns = 0;
        foreach (var conv in JinjaReferenceTests.Conversations())
        {
            if (conv.Any(x => x.Content.Contains("<|", StringComparison.Ordinal))) continue;   // special-token text in content: another test
            string text;
            try { text = m.Template.Render(conv, false); }
            catch (ChatTemplateException) { continue; }
            if (!text.IsNormalized()) continue;   // the reference reads bytes off the unnormalised text; Qwen's tokenizer composes (NFC)
            ChatEncoding enc;
            try { enc = m.Template.Encode(m.Tokenizer, conv); }
            catch (ChatTemplateException) when (conv[0].Role == "assistant") { continue; }   // Llama 3.1: BOS only before a first message
            Assert.Equal(m.Tokenizer.Encode(text), enc.Ids);
            int turns = conv.Count(x => x.Role == "assistant");
            var expected = ReferenceMask(m, text, enc.Ids, turns);
            Assert.True(expected.SequenceEqual(enc.AssistantMask),
                $"{m.Folder}: mask differs for {JsonSerializer.Serialize(conv.Select(x => new[] { x.Role, x.Content }))}\n" +
                $"  ours:      {Masked(m, enc.Ids, enc.AssistantMask)}\n  reference: {Masked(m, enc.Ids, expected)}");
            checkedTurns += turns;
        }
        return checkedTurns;
    }

    private static string Masked(Model m, int[] ids, bool[] mask) =>
        JsonSerializer.Serialize(m.Tokenizer.Decode(ids.Where((_, i) => mask[i]).ToArray()));

    [TokenizerFilesFact("qwen2_5/tokenizer.json", "qwen2_5/tokenizer_config.json")]
    public void Qwen25_MaskCoversAssistantContentAndEndOfTurn() => Assert.True(CheckConversations(Qwen25()) > 50);

    [TokenizerFilesFact("qwen3/tokenizer.json", "qwen3/tokenizer_config.json")]
    public void Qwen3_MaskCoversAssistantContentAndEndOfTurn() => Assert.True(CheckConversations(Qwen3()) > 50);

    [TokenizerFilesFact("llama3/tokenizer.json", "llama3/tokenizer_config.json")]
    public void Llama3_MaskCoversAssistantContentAndEndOfTurn() => Assert.True(CheckConversations(Llama3()) > 50);

    [TokenizerFilesFact("llama3/tokenizer.json", "llama3_1/tokenizer_config.json")]
    public void Llama31_MaskCoversAssistantContentAndEndOfTurn() => Assert.True(CheckConversations(Llama31()) > 50);

    [TokenizerFilesFact("qwen2_5/tokenizer.json", "qwen3/tokenizer.json", "llama3/tokenizer.json", "qwen2_5/tokenizer_config.json", "qwen3/tokenizer_config.json", "llama3/tokenizer_config.json")]
    public void OneTurn_MaskedTextIsTheDocumentedAnswerAndEndToken()
    {
        ChatMessage[] conv = [ChatMessage.User("What is 2+2?"), ChatMessage.Assistant("4")];
        // Qwen2.5 adds its default system prompt; Qwen3 writes an empty think block before the last answer; Llama 3 trims.
        Assert.Equal("4<|im_end|>", Masked(Qwen25(), conv));
        Assert.Equal("<think>\n\n</think>\n\n4<|im_end|>", Masked(Qwen3(), conv));
        Assert.Equal("4<|eot_id|>", Masked(Llama3(), [ChatMessage.User("What is 2+2?"), ChatMessage.Assistant("  4 ")]));
        Assert.StartsWith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n",
            Qwen25().Template.Render(conv, false), StringComparison.Ordinal);
        // Qwen3, two turns: the first answer (before the last user query) has no think block.
        ChatMessage[] two = [ChatMessage.User("a"), ChatMessage.Assistant("b"), ChatMessage.User("c"), ChatMessage.Assistant("d")];
        Assert.Equal("b<|im_end|>d<|im_end|>", Masked(Qwen3(), two).Replace("<think>\n\n</think>\n\n", "", StringComparison.Ordinal));
        Assert.Contains("<think>\n\n</think>\n\nd", Masked(Qwen3(), two), StringComparison.Ordinal);
        Assert.Equal([Qwen3().Tokenizer.SpecialId("<|im_end|>")], Qwen3().Template.StopIds(Qwen3().Tokenizer));
        Assert.Contains(Llama3().Tokenizer.SpecialId("<|eot_id|>"), Llama3().Template.StopIds(Llama3().Tokenizer));
    }

    private static string Masked(Model m, ChatMessage[] conv)
    {
        var enc = m.Template.Encode(m.Tokenizer, conv);
        return m.Tokenizer.Decode(enc.Ids.Where((_, i) => enc.AssistantMask[i]).ToArray());
    }

    // ChatML with Hugging Face's {% generation %} markup around the assistant's content and end token.
    internal const string GenerationChatMl =
        "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}" +
        "{%- if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}" +
        "{%- else %}{{ message['content'] + '<|im_end|>' + '\\n' }}{%- endif %}{%- endfor %}" +
        "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

    [TokenizerFilesFact("qwen2_5/tokenizer.json", "qwen2_5/tokenizer_config.json")]
    public void GenerationBlocks_GiveTheSameMaskAsPrefixRendering()
    {
        var m = Qwen25();
        var withBlocks = ChatTemplate.FromJinja(GenerationChatMl, new Dictionary<string, object?>(), "test template");
        var plain = ChatTemplate.FromJinja(GenerationChatMl.Replace("{% generation %}", "", StringComparison.Ordinal).Replace("{% endgeneration %}", "", StringComparison.Ordinal),
            new Dictionary<string, object?>(), "test template");
        int compared = 0;
        foreach (var conv in JinjaReferenceTests.Conversations())
        {
            if (conv.Any(x => x.Content.Contains("<|", StringComparison.Ordinal))) continue;
            var a = withBlocks.Encode(m.Tokenizer, conv);
            var b = plain.Encode(m.Tokenizer, conv);
            Assert.Equal(plain.Render(conv, false), withBlocks.Render(conv, false));
            Assert.Equal(b.Ids, a.Ids);
            Assert.Equal(b.AssistantMask, a.AssistantMask);
            var (text, spans) = withBlocks.AssistantSpans(m.Tokenizer, conv, false);
            Assert.Equal(conv.Count(x => x.Role == "assistant"), spans.Count);
            int k = 0;
            foreach (var msg in conv.Where(x => x.Role == "assistant"))
                Assert.Equal(msg.Content + "<|im_end|>", text[spans[k].Start..spans[k++].End]);
            compared++;
        }
        Assert.True(compared > 50);
    }

    [TokenizerFilesFact("qwen2_5/tokenizer.json", "qwen2_5/tokenizer_config.json")]
    public void NonNfcContent_IsMaskedPieceByPiece()
    {
        // Qwen's tokenizer composes to NFC, so decoding does not give the text back: the text is encoded at the span
        // boundaries (here pre-token boundaries: after "\n", at a special token), which gives the whole text's ids.
        var m = Qwen25();
        ChatMessage[] conv = [ChatMessage.User("cafe\u0301?"), ChatMessage.Assistant("cafe\u0301 ok")];
        string text = m.Template.Render(conv, false);
        Assert.NotEqual(text, m.Tokenizer.Decode(m.Tokenizer.Encode(text)));
        var enc = m.Template.Encode(m.Tokenizer, conv);
        Assert.Equal(m.Tokenizer.Encode(text), enc.Ids);
        Assert.Equal("café ok<|im_end|>", m.Tokenizer.Decode(enc.Ids.Where((_, i) => enc.AssistantMask[i]).ToArray()));
    }

    [TokenizerFilesFact("qwen2_5/tokenizer.json", "qwen2_5/tokenizer_config.json")]
    public void SpecialTokenTextInContent_IsTokenisedAsHuggingFaceDoes()
    {
        var m = Qwen25();
        ChatMessage[] conv = [ChatMessage.User("say <|im_end|>"), ChatMessage.Assistant("x <|im_end|> y")];
        var enc = m.Template.Encode(m.Tokenizer, conv);
        Assert.Equal(m.Tokenizer.Encode(m.Template.Render(conv, false)), enc.Ids);
        Assert.Equal("x <|im_end|> y<|im_end|>", m.Tokenizer.Decode(enc.Ids.Where((_, i) => enc.AssistantMask[i]).ToArray()));
    }
}
