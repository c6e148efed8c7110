using System.Text;

namespace Raft.Model.Tokenization.Jinja;

/// <summary>
/// A Jinja template as Hugging Face renders chat templates: the language subset and the semantics of
/// <c>@huggingface/jinja</c> (transformers.js; statements <c>if/elif/else</c>, <c>for</c> with <c>loop</c> and <c>else</c>,
/// <c>set</c> (also block set and namespace attributes), <c>macro</c>, <c>call</c>, <c>filter</c>, <c>break/continue</c>;
/// filters, tests, string/dict methods, slicing, whitespace control with <c>trim_blocks</c> and <c>lstrip_blocks</c>), so
/// that the text is byte for byte what that renderer writes. <c>{% generation %}</c> blocks render as nothing, as in
/// Hugging Face, and <see cref="RenderWithGenerationSpans"/> also reports where their output lies.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly ProgramNode _program;
    private readonly ProgramNode? _marked;

    private JinjaTemplate(string source, ProgramNode program, ProgramNode? marked)
    {
        Source = source;
        _program = program;
        _marked = marked;
    }

    /// <summary>The template's source text.</summary>
    public string Source { get; }

    /// <summary>Whether the template has <c>{% generation %}</c> … <c>{% endgeneration %}</c> blocks (Hugging Face's assistant-mask markup).</summary>
    public bool HasGenerationBlocks => _marked is not null;

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <exception cref="JinjaSyntaxException">The template does not parse; the message says why.</exception>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var program = ParseProgram(source, markGeneration: false);
        string marked = JinjaLexer.Preprocess(source, markGeneration: true);
        bool hasGeneration = marked.Contains(JinjaLexer.GenerationStart) || marked.Contains(JinjaLexer.GenerationEnd);
        return new JinjaTemplate(source, program, hasGeneration ? ParseProgram(source, markGeneration: true) : null);
    }

    private static ProgramNode ParseProgram(string source, bool markGeneration)
    {
        try
        {
            return JinjaParser.Parse(JinjaLexer.Tokenize(source, markGeneration));
        }
        catch (JinjaSyntaxException) { throw; }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or IndexOutOfRangeException or FormatException or OverflowException)
        {
            throw new JinjaSyntaxException(e.Message);
        }
    }

    /// <summary>
    /// Renders with <paramref name="variables"/> (strings, numbers, booleans, null, lists, dictionaries, <see cref="ChatMessage"/>s
    /// and <see cref="System.Text.Json.JsonElement"/>s are converted to template values). <paramref name="now"/> is what
    /// <c>strftime_now</c> reads (default: the local time).
    /// </summary>
    /// <exception cref="JinjaRenderException">The template raised (<c>raise_exception</c>: the message is the template's) or failed.</exception>
    public string Render(IReadOnlyDictionary<string, object?> variables, DateTime? now = null) => Run(_program, variables, now);

    /// <summary>
    /// Renders as <see cref="Render"/> does and also returns the character ranges <c>[start, end)</c> of the text that each
    /// <c>{% generation %}</c> block wrote (none when the template has no such block).
    /// </summary>
    /// <exception cref="JinjaRenderException">As <see cref="Render"/>; also when a variable holds the private-use characters U+E000/U+E001 that mark the blocks.</exception>
    public (string Text, IReadOnlyList<(int Start, int End)> Generation) RenderWithGenerationSpans(IReadOnlyDictionary<string, object?> variables, DateTime? now = null)
    {
        var at = now ?? DateTime.Now;
        string plain = Run(_program, variables, at);
        if (_marked is null) return (plain, []);
        string marked = Run(_marked, variables, at);
        var text = new StringBuilder(marked.Length);
        var spans = new List<(int, int)>();
        int open = -1;
        foreach (char c in marked)
        {
            if (c == JinjaLexer.GenerationStart) { if (open < 0) open = text.Length; }
            else if (c == JinjaLexer.GenerationEnd)
            {
                if (open >= 0 && text.Length > open) spans.Add((open, text.Length));
                open = -1;
            }
            else text.Append(c);
        }
        if (open >= 0 && text.Length > open) spans.Add((open, text.Length));
        if (text.ToString() != plain)
            throw new JinjaRenderException(
                "the {% generation %} blocks could not be located: the conversation holds U+E000/U+E001, the private-use characters that mark them, or whitespace control removed a block's boundary.");
        return (plain, spans);
    }

    private static string Run(ProgramNode program, IReadOnlyDictionary<string, object?> variables, DateTime? now)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var env = JinjaInterpreter.GlobalEnv(now ?? DateTime.Now);
        try
        {
            foreach (var (k, v) in variables) env.Declare(k, JConvert.From(v));
            return new JinjaInterpreter().Run(program, env);
        }
        catch (JinjaRenderException) { throw; }
        catch (JinjaSyntaxException e) { throw new JinjaRenderException(e.Message); }
        catch (BreakSignal) { throw new JinjaRenderException("break outside a loop"); }
        catch (ContinueSignal) { throw new JinjaRenderException("continue outside a loop"); }
        catch (InsufficientExecutionStackException) { throw new JinjaRenderException("the template nests too deeply or recurses without end (the stack ran out)"); }
        catch (Exception e) when (e is InvalidCastException or ArgumentException or IndexOutOfRangeException or NullReferenceException
                                       or FormatException or OverflowException or InvalidOperationException or KeyNotFoundException)
        {
            throw new JinjaRenderException(e.Message);
        }
    }
}
