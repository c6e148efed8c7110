using System.Text;

namespace Raft.Model.Tokenization;

/// <summary>One chat turn: a role ("system", "user", "assistant", …) and its text.</summary>
/// <param name="Role">Who speaks.</param>
/// <param name="Content">What is said.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>A system turn.</summary>
    public static ChatMessage System(string content) => new("system", content);
    /// <summary>A user turn.</summary>
    public static ChatMessage User(string content) => new("user", content);
    /// <summary>An assistant turn.</summary>
    public static ChatMessage Assistant(string content) => new("assistant", content);
}

/// <summary>A conversation's token ids and, for each id, whether it belongs to an assistant turn's content or its end token (the SFT loss mask).</summary>
/// <param name="Ids">The token ids, <c>[length]</c>.</param>
/// <param name="AssistantMask">True where the id is assistant content or the end-of-turn token that closes it, <c>[length]</c>.</param>
public sealed record ChatEncoding(int[] Ids, bool[] AssistantMask);

/// <summary>
/// Turns a list of messages into the prompt text a model family was trained on:
/// <list type="bullet">
/// <item><c>chatml</c> (Qwen2/2.5/3, SmolLM2): <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message; the
/// generation prompt is <c>&lt;|im_start|&gt;assistant\n</c>. (Qwen2.5's default system message is not inserted.)</item>
/// <item><c>llama3</c>: <c>&lt;|begin_of_text|&gt;</c>, then <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c>
/// per message, content trimmed as Meta's template does; the generation prompt is the assistant header.</item>
/// <item><c>raft</c> (the built-in byte models, <see cref="ByteTokenizer"/>): <c>&lt;|bos|&gt;</c>, then
/// <c>&lt;|role|&gt;content&lt;|end|&gt;</c> per message (roles system, user, assistant); the generation prompt is <c>&lt;|assistant|&gt;</c>.</item>
/// </list>
/// </summary>
public sealed partial class ChatTemplate
{
    private readonly string _start;                         // once, before the first message
    private readonly Func<string, string> _header;          // role → text before the content
    private readonly Func<string, string> _content;         // content as the template writes it
    private readonly string _endOfTurn;                      // the special token that closes a turn
    private readonly string _afterTurn;                      // text after the end token (not part of the turn)
    private readonly Func<string, bool> _roleAllowed;

    private ChatTemplate(string name, string start, Func<string, string> header, Func<string, string> content,
        string endOfTurn, string afterTurn, Func<string, bool> roleAllowed)
    {
        Name = name;
        _start = start;
        _header = header;
        _content = content;
        _endOfTurn = endOfTurn;
        _afterTurn = afterTurn;
        _roleAllowed = roleAllowed;
        Origin = $"fallback {name switch { "chatml" => "ChatML", "llama3" => "Llama 3", _ => "built-in raft" }}";
    }

    /// <summary>Where the template comes from, for the log: "tokenizer_config.json of DIR", "chat_template.jinja of DIR", "fallback ChatML", ….</summary>
    public string Origin { get; private set; }

    /// <summary>The template's name: "chatml", "llama3" or "raft" for the built-in ones, "model" (or the named template's name) for a model's own.</summary>
    public string Name { get; }

    /// <summary>The special token that ends a turn of a built-in template (empty for a model's own template: see <see cref="StopIds"/>).</summary>
    public string EndOfTurn => _endOfTurn;

    /// <summary>ChatML, as Qwen uses it.</summary>
    public static ChatTemplate ChatMl { get; } = new("chatml", "", role => $"<|im_start|>{role}\n", c => c, "<|im_end|>", "\n",
        role => role.Length > 0);

    /// <summary>Llama 3's header format.</summary>
    public static ChatTemplate Llama3 { get; } = new("llama3", "<|begin_of_text|>", role => $"<|start_header_id|>{role}<|end_header_id|>\n\n",
        c => c.Trim(), "<|eot_id|>", "", role => role.Length > 0);

    /// <summary>The built-in byte format over <see cref="ByteTokenizer"/>'s special tokens.</summary>
    public static ChatTemplate Raft { get; } = new("raft", ByteTokenizer.Bos, role => $"<|{role}|>", c => c, ByteTokenizer.End, "",
        role => role is "system" or "user" or "assistant");

    /// <summary>The template named <paramref name="name"/> ("chatml", "qwen2", "llama3", "raft"; case-insensitive).</summary>
    /// <exception cref="ArgumentException">The name is unknown.</exception>
    public static ChatTemplate Get(string name) => name?.ToLowerInvariant() switch
    {
        "chatml" or "qwen" or "qwen2" or "qwen3" => ChatMl,
        "llama3" or "llama-3" => Llama3,
        "raft" => Raft,
        _ => throw new ArgumentException($"Unknown chat template \"{name}\"; expected chatml, llama3 or raft.", nameof(name)),
    };

    /// <summary>
    /// The template for a tokenizer: <paramref name="overrideName"/> when given; otherwise from the tokenizer's family
    /// and special tokens (raft → raft; &lt;|start_header_id|&gt; → llama3; &lt;|im_start|&gt; → chatml), then from
    /// <paramref name="modelType"/> (config.json's model_type: qwen2/qwen3 → chatml, raft → raft).
    /// </summary>
    /// <exception cref="NotSupportedException">No template fits (e.g. Llama 2's tokenizer: its [INST] format is not supported).</exception>
    public static ChatTemplate ForTokenizer(ITokenizer tokenizer, string? modelType = null, string? overrideName = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!string.IsNullOrEmpty(overrideName)) return Get(overrideName);
        if (tokenizer.Family == "raft") return Raft;
        if (tokenizer.Family == "llama3" || tokenizer.TryGetSpecialId("<|start_header_id|>", out _)) return Llama3;
        if (tokenizer.Family == "qwen2" || tokenizer.TryGetSpecialId("<|im_start|>", out _)) return ChatMl;
        return modelType?.ToLowerInvariant() switch
        {
            "qwen2" or "qwen3" => ChatMl,
            "raft" => Raft,
            _ => throw new NotSupportedException(
                $"No chat template for a {tokenizer.Family} tokenizer (model_type {modelType ?? "unknown"}); name one: chatml, llama3 or raft."),
        };
    }

    private void Check(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw new ArgumentException($"messages[{i}] is null.", nameof(messages));
            if (m.Role is null || !_roleAllowed(m.Role))
                throw new ArgumentException($"messages[{i}].Role \"{m.Role}\" is not allowed by the {Name} template.", nameof(messages));
            if (m.Content is null) throw new ArgumentException($"messages[{i}].Content is null.", nameof(messages));
        }
    }

    /// <summary>The prompt text; with <paramref name="addGenerationPrompt"/> it ends with the header of a new assistant turn.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        if (_jinja is not null) return RenderJinja(messages, addGenerationPrompt);
        Check(messages);
        var sb = new StringBuilder(_start);
        foreach (var m in messages)
            sb.Append(_header(m.Role)).Append(_content(m.Content)).Append(_endOfTurn).Append(_afterTurn);
        if (addGenerationPrompt) sb.Append(_header("assistant"));
        return sb.ToString();
    }

    /// <summary>
    /// Encodes the conversation with <paramref name="tokenizer"/> and marks the tokens of each assistant turn's content and
    /// its end token. The template's markup is encoded with special tokens recognised; message content is encoded as plain
    /// text (special-token text inside a message stays text). Pieces are encoded one by one (header, content, end), so the
    /// ids equal <c>tokenizer.Encode(Render(…))</c> whenever those boundaries are pre-tokenization boundaries too, which
    /// holds next to special tokens and for content that does not start with whitespace.
    /// </summary>
    /// <exception cref="ArgumentException">The tokenizer lacks the template's end-of-turn token.</exception>
    public ChatEncoding Encode(ITokenizer tokenizer, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = false)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (_jinja is not null) return EncodeJinja(tokenizer, messages, addGenerationPrompt);
        Check(messages);
        if (!tokenizer.TryGetSpecialId(_endOfTurn, out int end))
            throw new ArgumentException($"The {tokenizer.Family} tokenizer has no \"{_endOfTurn}\" token, which the {Name} template needs.", nameof(tokenizer));
        var ids = new List<int>();
        var mask = new List<bool>();
        void Add(int[] piece, bool assistant)
        {
            ids.AddRange(piece);
            for (int i = 0; i < piece.Length; i++) mask.Add(assistant);
        }
        Add(tokenizer.Encode(_start), false);
        foreach (var m in messages)
        {
            bool a = m.Role == "assistant";
            Add(tokenizer.Encode(_header(m.Role)), false);
            Add(tokenizer.Encode(_content(m.Content), allowSpecial: false), a);
            Add([end], a);
            Add(tokenizer.Encode(_afterTurn), false);
        }
        if (addGenerationPrompt) Add(tokenizer.Encode(_header("assistant")), false);
        return new ChatEncoding(ids.ToArray(), mask.ToArray());
    }

    /// <summary>The ids generation should stop on: the end-of-turn token and the tokenizer's EOS.</summary>
    public int[] StopIds(ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var stops = new List<int>();
        foreach (string end in _jinja is not null ? JinjaEndTokens(tokenizer) : [_endOfTurn])
            if (tokenizer.TryGetSpecialId(end, out int e) && !stops.Contains(e)) stops.Add(e);
        if (tokenizer.EosId is int eos && !stops.Contains(eos)) stops.Add(eos);
        return stops.ToArray();
    }
}
