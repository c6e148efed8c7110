using Raft.Model.Tokenization;
using Raft.Model.Tokenization.Jinja;

namespace Raft.Model.Tests.Tokenization;

/// <summary>
/// The Jinja renderer on its own (no node needed): outputs that follow from Jinja's documented semantics with
/// transformers' settings (trim_blocks, lstrip_blocks), error reporting, and the generation-block spans.
/// JinjaReferenceTests compares everything with Hugging Face's renderer itself.
/// </summary>
public class JinjaTemplateTests
{
    private static string Render(string template, params (string, object?)[] vars) =>
        JinjaTemplate.Parse(template).Render(vars.ToDictionary(v => v.Item1, v => v.Item2));

    private static readonly List<ChatMessage> Chat = [ChatMessage.User("Hi"), ChatMessage.Assistant("Hello")];

    [Fact]
    public void Loops_Conditions_AndLoopVariables()
    {
        Assert.Equal("1:user 2:assistant ", Render("{% for m in messages %}{{ loop.index }}:{{ m.role }} {% endfor %}", ("messages", Chat)));
        Assert.Equal("user,assistant", Render("{% for m in messages %}{{ m['role'] }}{% if not loop.last %},{% endif %}{% endfor %}", ("messages", Chat)));
        Assert.Equal("assistantuser", Render("{% for m in messages[::-1] %}{{ m.role }}{% endfor %}", ("messages", Chat)));
        Assert.Equal("two", Render("{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %}", ("n", 2)));
        Assert.Equal("empty", Render("{% for x in xs %}{{ x }}{% else %}empty{% endfor %}", ("xs", new List<object>())));
    }

    [Fact]
    public void WhitespaceControl_TrimsAndStripsBlocksAsTransformersConfiguresJinja()
    {
        // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before a block tag goes;
        // one trailing newline of the template goes.
        Assert.Equal("x\n", Render("  {% if true %}\nx\n  {% endif %}\n"));
        Assert.Equal("a|b", Render("a  \n  {{- '|' -}}  \n b"));
        Assert.Equal("ab", Render("a {#- a comment -#} b"));
        Assert.Equal("  {{ kept }}", Render("  {{ '{{ kept }}' }}"));
    }

    [Fact]
    public void Namespace_Set_Macros_AndFilters()
    {
        Assert.Equal("6", Render("{% set ns = namespace(total=0) %}{% for x in xs %}{% set ns.total = ns.total + x %}{% endfor %}{{ ns.total }}",
            ("xs", new List<object> { 1, 2, 3 })));
        Assert.Equal("0", Render("{% set total = 0 %}{% for x in xs %}{% set total = total + x %}{% endfor %}{{ total }}", ("xs", new List<object> { 1, 2 })));
        Assert.Equal("Hi Ann! Hi Bo?", Render("{% macro hi(who, p='!') %}Hi {{ who }}{{ p }}{% endmacro %}{{ hi('Ann') }} {{ hi('Bo', p='?') }}"));
        Assert.Equal("ABC 3 x", Render("{{ s | upper }} {{ s | length }} {{ missing | default('x') }}", ("s", "abc")));
        Assert.Equal("{\"a\": [1, \"é\", null]}", Render("{{ d | tojson }}", ("d", new Dictionary<string, object?> { ["a"] = new List<object?> { 1, "é", null } })));
        Assert.Equal("True False", Render("{{ s.startswith('ab') ~ ' ' ~ s.endswith('x') }}", ("s", "abc")).Replace("true", "True").Replace("false", "False"));
        Assert.Equal("[\"a\", \"b\"] bc", Render("{{ s.split(',') }} {{ t[1:] }}", ("s", "a,b"), ("t", "abc")));
        Assert.Equal("", Render("{{ undefined_name }}{{ none }}"));
    }

    [Fact]
    public void RaiseException_CarriesTheTemplatesMessage()
    {
        var e = Assert.Throws<JinjaRenderException>(() => Render("{{ raise_exception('roles must alternate') }}"));
        Assert.Equal("roles must alternate", e.Message);
        Assert.Throws<JinjaRenderException>(() => Render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"));
        Assert.Throws<JinjaSyntaxException>(() => JinjaTemplate.Parse("{% if x %}no end"));
        Assert.Throws<JinjaSyntaxException>(() => JinjaTemplate.Parse("{% unknown %}"));
        Assert.Throws<JinjaSyntaxException>(() => JinjaTemplate.Parse("{{ 'unterminated }}"));
    }

    [Fact]
    public void GenerationBlocks_RenderAsNothing_AndReportTheirSpans()
    {
        const string source = "{% for m in messages %}<{{ m.role }}>\n{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}\n" +
                              "{% else %}{{ m.content }}\n{% endif %}{% endfor %}";
        var t = JinjaTemplate.Parse(source);
        Assert.True(t.HasGenerationBlocks);
        var vars = new Dictionary<string, object?> { ["messages"] = Chat };
        string plain = t.Render(vars);
        Assert.Equal("<user>\nHi\n<assistant>\nHello</s>", plain);   // trim_blocks also takes the newline after {% endgeneration %}
        var (text, spans) = t.RenderWithGenerationSpans(vars);
        Assert.Equal(plain, text);
        Assert.Equal([(text.IndexOf("Hello", StringComparison.Ordinal), text.IndexOf("</s>", StringComparison.Ordinal) + 4)], spans);
        // With whitespace control around the tags the removed whitespace stays removed and the span still holds the text.
        var tight = JinjaTemplate.Parse("a {%- generation -%}  b  {%- endgeneration -%} c");
        var (tt, ts) = tight.RenderWithGenerationSpans(new Dictionary<string, object?>());
        Assert.Equal("abc", tt);
        Assert.Equal([(1, 2)], ts);
        Assert.False(JinjaTemplate.Parse("{{ x }}").HasGenerationBlocks);
    }

    [Fact]
    public void ModelTemplate_RefusesUnknownListsAndNamesItsFile()
    {
        using var tmp = new TempDirectory();
        File.WriteAllText(Path.Combine(tmp.Path, "tokenizer_config.json"),
            "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"</s>\", \"chat_template\": [{\"name\": \"default\", \"template\": \"{{ bos_token }}{{ messages[0].content }}{{ eos_token }}\"}, {\"name\": \"rag\", \"template\": \"x\"}]}");
        var t = ChatTemplate.FromModelDirectory(tmp.Path)!;
        Assert.Equal("default", t.Name);
        Assert.Equal("<s>Hi</s>", t.Render(Chat, false));
        File.WriteAllText(Path.Combine(tmp.Path, "chat_template.jinja"), "{{ raise_exception('no') }}");
        var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.FromModelDirectory(tmp.Path)!.Render(Chat, false));
        Assert.Equal($"chat_template.jinja of {tmp.Path}: the chat template raised: no", e.Message);
        File.Delete(Path.Combine(tmp.Path, "chat_template.jinja"));
        File.WriteAllText(Path.Combine(tmp.Path, "tokenizer_config.json"), "{\"chat_template\": 3}");
        Assert.Contains("chat_template must be a string or a list", Assert.Throws<ChatTemplateException>(() => ChatTemplate.FromModelDirectory(tmp.Path)).Message,
            StringComparison.Ordinal);
        File.WriteAllText(Path.Combine(tmp.Path, "tokenizer_config.json"), "{}");
        Assert.Null(ChatTemplate.FromModelDirectory(tmp.Path));
    }
}
