using System.Text.Json;
using Raft.Model.Tokenization.Jinja;

namespace Raft.Model.Tokenization;

/// <summary>A chat template that cannot be read or that raised while rendering; the message names the template's file.</summary>
public sealed class ChatTemplateException(string message, Exception? inner = null) : Exception(message, inner);

// The model's own chat template (a Jinja template from the model folder), rendered by Raft.Model.Tokenization.Jinja.
public sealed partial class ChatTemplate
{
    private readonly JinjaTemplate? _jinja;
    private readonly IReadOnlyDictionary<string, object?> _specialTokens = new Dictionary<string, object?>();
    private string[]? _endTokens;

    private ChatTemplate(JinjaTemplate jinja, IReadOnlyDictionary<string, object?> specialTokens, string name, string origin)
        : this(name, "", _ => "", c => c, "", "", _ => true)
    {
        _jinja = jinja;
        _specialTokens = specialTokens;
        Origin = origin;
    }

    /// <summary>Whether this is a model's own (Jinja) template rather than a built-in fallback.</summary>
    public bool IsModelTemplate => _jinja is not null;

    /// <summary>The Jinja source of a model's own template (null for the built-in ones).</summary>
    public string? Source => _jinja?.Source;

    /// <summary>
    /// A model's own template from its Jinja <paramref name="source"/>. <paramref name="specialTokens"/> are the variables the
    /// template sees besides <c>messages</c> and <c>add_generation_prompt</c> (Hugging Face passes the tokenizer's special
    /// tokens: <c>bos_token</c>, <c>eos_token</c>, …; a null value is a token the tokenizer does not have).
    /// </summary>
    /// <exception cref="ChatTemplateException">The template does not parse; the message names <paramref name="origin"/>.</exception>
    public static ChatTemplate FromJinja(string source, IReadOnlyDictionary<string, object?> specialTokens, string origin, string name = "model")
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(specialTokens);
        ArgumentNullException.ThrowIfNull(origin);
        try
        {
            return new ChatTemplate(JinjaTemplate.Parse(source), specialTokens, name, origin);
        }
        catch (JinjaSyntaxException e)
        {
            throw new ChatTemplateException($"{origin}: the chat template does not parse: {e.Message}", e);
        }
    }

    /// <summary>
    /// The chat template a Hugging Face model folder carries, in transformers' order of precedence: <c>chat_template.jinja</c>,
    /// then <c>chat_template.json</c> (<c>{"chat_template": …}</c>), then <c>tokenizer_config.json</c>'s <c>chat_template</c>
    /// (a string, or a list of <c>{"name", "template"}</c> of which the one named "default" is used). The template sees the
    /// tokenizer's special tokens as tokenizer_config.json names them: every top-level key ending in <c>_token</c> (text,
    /// <c>{"content": text}</c> or null). Null when the folder has no template.
    /// </summary>
    /// <exception cref="ChatTemplateException">A template file is malformed or its template does not parse; the message names the file.</exception>
    public static ChatTemplate? FromModelDirectory(string dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        string configPath = Path.Combine(dir, "tokenizer_config.json");
        var specials = SpecialTokenVariables(configPath);
        string jinjaPath = Path.Combine(dir, "chat_template.jinja");
        if (File.Exists(jinjaPath))
            return FromJinja(File.ReadAllText(jinjaPath), specials, $"chat_template.jinja of {dir}");
        string jsonPath = Path.Combine(dir, "chat_template.json");
        if (File.Exists(jsonPath))
        {
            using var doc = Parse(jsonPath);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var t))
                throw new ChatTemplateException($"{jsonPath}: expected an object with a \"chat_template\" key.");
            var (source, name) = TemplateValue(t, jsonPath);
            return FromJinja(source, specials, $"chat_template.json of {dir}", name);
        }
        if (File.Exists(configPath))
        {
            using var doc = Parse(configPath);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("chat_template", out var t) &&
                t.ValueKind != JsonValueKind.Null)
            {
                var (source, name) = TemplateValue(t, configPath);
                return FromJinja(source, specials, $"tokenizer_config.json of {dir}", name);
            }
        }
        return null;
    }

    /// <summary>
    /// The template of a model folder: the built-in <paramref name="overrideName"/> when given; else the folder's own
    /// (<see cref="FromModelDirectory"/>); else the fallback <see cref="ForTokenizer"/> picks. <see cref="Origin"/> says which.
    /// </summary>
    public static ChatTemplate ForModel(string dir, ITokenizer tokenizer, string? modelType = null, string? overrideName = null)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (!string.IsNullOrEmpty(overrideName)) return Get(overrideName);
        return FromModelDirectory(dir) ?? ForTokenizer(tokenizer, modelType);
    }

    private static JsonDocument Parse(string path)
    {
        try
        {
            var bytes = File.ReadAllBytes(path);
            // JsonDocument passes invalid UTF-8 inside strings; reading one would throw InvalidOperationException naming no file
            if (!System.Text.Unicode.Utf8.IsValid(bytes))
                throw new ChatTemplateException($"{path}: the file is not valid UTF-8 (a damaged file?).");
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { AllowTrailingCommas = true, MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new ChatTemplateException($"{path}: not valid JSON ({e.Message}).", e);
        }
    }

    private static (string Source, string Name) TemplateValue(JsonElement t, string path)
    {
        if (t.ValueKind == JsonValueKind.String) return (t.GetString()!, "model");
        if (t.ValueKind == JsonValueKind.Array)
        {
            var names = new List<string>();
            foreach (var e in t.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String ||
                    !e.TryGetProperty("template", out var s) || s.ValueKind != JsonValueKind.String)
                    throw new ChatTemplateException($"{path}: chat_template[{names.Count}] must be {{\"name\": text, \"template\": text}}.");
                if (n.GetString() == "default") return (s.GetString()!, "default");
                names.Add(n.GetString()!);
            }
            throw new ChatTemplateException($"{path}: chat_template lists templates {string.Join(", ", names.Select(x => $"\"{x}\""))} but none named \"default\".");
        }
        throw new ChatTemplateException($"{path}: chat_template must be a string or a list of {{\"name\", \"template\"}}, got {t.ValueKind}.");
    }

    private static Dictionary<string, object?> SpecialTokenVariables(string configPath)
    {
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (!File.Exists(configPath)) return vars;
        using var doc = Parse(configPath);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) return vars;
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (!p.Name.EndsWith("_token", StringComparison.Ordinal)) continue;
            switch (p.Value.ValueKind)
            {
                case JsonValueKind.String: vars[p.Name] = p.Value.GetString(); break;
                case JsonValueKind.Null: vars[p.Name] = null; break;
                case JsonValueKind.Object when p.Value.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String:
                    vars[p.Name] = c.GetString(); break;
            }
        }
        return vars;
    }

    /// <summary>The variables a model's template renders <paramref name="messages"/> with: the special tokens, <c>messages</c>, <c>add_generation_prompt</c>, and <c>tools</c> / <c>documents</c> as none.</summary>
    public IReadOnlyDictionary<string, object?> Variables(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var vars = new Dictionary<string, object?>(_specialTokens, StringComparer.Ordinal)
        {
            ["messages"] = messages.ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            // transformers renders with tools=None and documents=None when none are given: defined, and none.
            ["tools"] = null,
            ["documents"] = null,
        };
        return vars;
    }

    private static void CheckMessages(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i] ?? throw new ArgumentException($"messages[{i}] is null.", nameof(messages));
            if (m.Role is null) throw new ArgumentException($"messages[{i}].Role is null.", nameof(messages));
            if (m.Content is null) throw new ArgumentException($"messages[{i}].Content is null.", nameof(messages));
        }
    }

    private string RenderJinja(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        CheckMessages(messages);
        try
        {
            return _jinja!.Render(Variables(messages, addGenerationPrompt));
        }
        catch (JinjaRenderException e)
        {
            throw new ChatTemplateException($"{Origin}: the chat template raised: {e.Message}", e);
        }
    }

    /// <summary>
    /// The character ranges <c>[start, end)</c> of the rendered conversation that the assistant mask covers, and the text.
    /// With <c>{% generation %}</c> blocks: what the blocks wrote (Hugging Face's <c>return_assistant_tokens_mask</c>).
    /// Otherwise, by rendering prefixes: assistant turn i starts where <c>messages[..i]</c> rendered with the generation
    /// prompt ends (which must be a prefix of the whole rendering) and ends with the last special token of the text that
    /// <c>messages[..(i+1)]</c> adds after that prefix (the turn's end-of-turn token; text after it, such as ChatML's
    /// newline, is not the model's to generate). When the turn renders differently as the last message than inside the
    /// conversation (Qwen3's empty think block), the end is found as the same occurrence of that token in the whole text.
    /// </summary>
    /// <exception cref="ChatTemplateException">The template raised, or a turn cannot be located this way (the template then needs generation blocks).</exception>
    public (string Text, IReadOnlyList<(int Start, int End)> Spans) AssistantSpans(ITokenizer tokenizer, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (_jinja is null) throw new InvalidOperationException("AssistantSpans is for a model's own template; the built-in ones encode their pieces directly.");
        CheckMessages(messages);
        try
        {
            if (_jinja.HasGenerationBlocks)
            {
                var (t, g) = _jinja.RenderWithGenerationSpans(Variables(messages, addGenerationPrompt));
                return (t, g);
            }
            string full = _jinja.Render(Variables(messages, addGenerationPrompt));
            var spans = new List<(int, int)>();
            for (int i = 0; i < messages.Count; i++)
            {
                if (messages[i].Role != "assistant") continue;
                string prefix = _jinja.Render(Variables(messages.Take(i).ToList(), true));
                string last = _jinja.Render(Variables(messages.Take(i + 1).ToList(), false));
                if (!full.StartsWith(prefix, StringComparison.Ordinal) || !last.StartsWith(prefix, StringComparison.Ordinal))
                    throw new ChatTemplateException(
                        $"{Origin}: assistant turn messages[{i}] cannot be located: the conversation up to it rendered with the generation prompt is not " +
                        "a prefix of the whole rendering; mark the assistant text with {% generation %} … {% endgeneration %} in the template.");
                string added = last[prefix.Length..];
                var (token, relEnd) = TurnEnd(tokenizer, added, messages[i].Content);
                int p = prefix.Length, end;
                if (string.CompareOrdinal(full, p, added, 0, relEnd) == 0) end = p + relEnd;
                else if (token is not null)
                {
                    int count = Occurrences(added[..relEnd], token), at = p, found = -1;
                    for (int c = 0; c < count; c++)
                    {
                        found = full.IndexOf(token, at, StringComparison.Ordinal);
                        if (found < 0) break;
                        at = found + token.Length;
                    }
                    if (found < 0)
                        throw new ChatTemplateException($"{Origin}: assistant turn messages[{i}] cannot be located: its end-of-turn token {token} is not in the rendering.");
                    end = at;
                }
                else throw new ChatTemplateException(
                    $"{Origin}: assistant turn messages[{i}] renders differently as the last message and has no special token to end it; mark it with {{% generation %}} blocks.");
                if (end > p) spans.Add((p, end));
            }
            return (full, spans);
        }
        catch (JinjaRenderException e)
        {
            throw new ChatTemplateException($"{Origin}: the chat template raised: {e.Message}", e);
        }
    }

    private static int Occurrences(string text, string token)
    {
        int n = 0;
        for (int at = text.IndexOf(token, StringComparison.Ordinal); at >= 0; at = text.IndexOf(token, at + token.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    // The end of an assistant turn in the text the turn adds: the first special token (a tokenizer token flagged special,
    // so not Qwen3's <think>) after the turn's content (found as its trimmed text when the template writes it whole, else
    // from the start); else the special-or-added token that ends last; (null, text.Length) when there is none.
    private static (string? Token, int End) TurnEnd(ITokenizer tokenizer, string added, string content)
    {
        string trimmed = content.Trim();
        int from = trimmed.Length > 0 && added.IndexOf(trimmed, StringComparison.Ordinal) is int at && at >= 0 ? at + trimmed.Length : 0;
        string? best = null;
        int bestAt = int.MaxValue;
        foreach (var (tok, id) in tokenizer.SpecialTokens)
        {
            if (tok.Length == 0 || !tokenizer.IsSpecial(id)) continue;
            int found = added.IndexOf(tok, from, StringComparison.Ordinal);
            if (found >= 0 && (found < bestAt || (found == bestAt && tok.Length > best!.Length))) { best = tok; bestAt = found; }
        }
        return best is not null ? (best, bestAt + best.Length) : LastSpecial(tokenizer, added);
    }

    // The special token whose occurrence in text ends last (the longest on a tie), and that end; (null, text.Length) when none.
    private static (string? Token, int End) LastSpecial(ITokenizer tokenizer, string text)
    {
        string? best = null;
        int bestEnd = -1;
        foreach (var tok in tokenizer.SpecialTokens.Keys)
        {
            if (tok.Length == 0) continue;
            int at = text.LastIndexOf(tok, StringComparison.Ordinal);
            if (at < 0) continue;
            int end = at + tok.Length;
            if (end > bestEnd || (end == bestEnd && tok.Length > best!.Length)) { best = tok; bestEnd = end; }
        }
        return best is null ? (null, text.Length) : (best, bestEnd);
    }

    // The tokens a model's template closes assistant turns with (a probe conversation's), then EOS (in StopIds).
    private string[] JinjaEndTokens(ITokenizer tokenizer)
    {
        if (_endTokens is not null) return _endTokens;
        var ends = new List<string>();
        try
        {
            var (_, spans) = AssistantSpans(tokenizer, [ChatMessage.User("Hi"), ChatMessage.Assistant("Hello")], false);
            string text = Render([ChatMessage.User("Hi"), ChatMessage.Assistant("Hello")], false);
            foreach (var (s, e) in spans)
            {
                var (tok, _) = LastSpecial(tokenizer, text[s..e]);
                if (tok is not null && !ends.Contains(tok)) ends.Add(tok);
            }
        }
        catch (ChatTemplateException) { }
        return _endTokens = ends.ToArray();
    }

    private ChatEncoding EncodeJinja(ITokenizer tokenizer, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var (text, spans) = AssistantSpans(tokenizer, messages, addGenerationPrompt);
        return TokenSpans.Encode(tokenizer, text, spans);
    }
}

/// <summary>
/// Encodes a rendered text as Hugging Face does (the whole text at once, special-token text recognised, nothing added) and
/// marks the tokens that overlap given character ranges (as transformers maps <c>{% generation %}</c> character spans to
/// tokens with <c>char_to_token</c>). A token's character range is found from the decoded prefixes of the ids: the ids of
/// <c>text[..b]</c> agree with those of the whole text up to the pre-token that holds b, and decoding one to four more
/// ids tells which of them end at or before b. For a tokenizer whose decoding does not give the text back, the text is
/// encoded piece by piece at the range boundaries instead (the same ids whenever those are pre-token boundaries).
/// </summary>
public static class TokenSpans
{
    /// <summary>The ids of <paramref name="text"/> and, per id, whether it overlaps one of <paramref name="spans"/>.</summary>
    public static ChatEncoding Encode(ITokenizer tokenizer, string text, IReadOnlyList<(int Start, int End)> spans)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(spans);
        int[] ids = tokenizer.Encode(text, addSpecial: false, allowSpecial: true);
        var mask = new bool[ids.Length];
        if (spans.Count == 0) return new ChatEncoding(ids, mask);
        if (tokenizer.Decode(ids) != text) return Piecewise(tokenizer, text, spans);
        foreach (var (start, end) in spans)
        {
            // Tokens wholly before the span stay unmasked; one that straddles its start overlaps it and is masked, as is
            // one that straddles its end.
            var (from, _) = TokensBefore(tokenizer, text, ids, start);
            var (last, exactEnd) = TokensBefore(tokenizer, text, ids, end);
            int to = exactEnd ? last : last + 1;
            for (int t = from; t < Math.Min(to, ids.Length); t++) mask[t] = true;
        }
        return new ChatEncoding(ids, mask);
    }

    // The number of leading ids whose decoding lies within text[..b], and whether it ends exactly at b.
    private static (int Count, bool Exact) TokensBefore(ITokenizer tokenizer, string text, int[] ids, int b)
    {
        int[] p = tokenizer.Encode(text[..b], addSpecial: false, allowSpecial: true);
        int k = 0;
        while (k < p.Length && k < ids.Length && p[k] == ids[k]) k++;
        bool Within(int m, out int len)
        {
            string d = tokenizer.Decode(ids.AsSpan(0, m));
            len = d.Length;
            return d.Length <= b && string.CompareOrdinal(text, 0, d, 0, d.Length) == 0;
        }
        int length;
        while (k > 0 && !Within(k, out _)) k--;
        bool moved = true;
        while (moved)
        {
            moved = false;
            for (int j = 1; j <= 4 && k + j <= ids.Length; j++)
                if (Within(k + j, out _)) { k += j; moved = true; break; }
        }
        Within(k, out length);
        return (k, length == b);
    }

    private static ChatEncoding Piecewise(ITokenizer tokenizer, string text, IReadOnlyList<(int Start, int End)> spans)
    {
        var ids = new List<int>();
        var mask = new List<bool>();
        int at = 0;
        void Add(int from, int to, bool m)
        {
            if (to <= from) return;
            var piece = tokenizer.Encode(text[from..to], addSpecial: false, allowSpecial: true);
            ids.AddRange(piece);
            for (int i = 0; i < piece.Length; i++) mask.Add(m);
        }
        foreach (var (s, e) in spans.OrderBy(x => x.Start))
        {
            Add(at, Math.Max(at, s), false);
            Add(Math.Max(at, s), e, true);
            at = Math.Max(at, e);
        }
        Add(at, text.Length, false);
        return new ChatEncoding(ids.ToArray(), mask.ToArray());
    }
}
