using System.Text;
using CsCheck;
using Raft.Model.Tokenization;

namespace Raft.Model.Tests;

/// <summary>
/// Mutation tests of tokenizer_config.json as its two readers see it (#19): the special-token side (the tokenizer loader)
/// and the chat template (<see cref="ChatTemplate.FromModelDirectory"/>, then a render). A valid file is truncated,
/// bit-flipped, nested deep in JSON and in its Jinja template, or given a huge added_tokens_decoder; each either loads
/// and renders or throws <see cref="InvalidDataException"/>, <see cref="NotSupportedException"/> or
/// <see cref="ChatTemplateException"/> naming tokenizer_config.json and its folder, never another exception type, within
/// <see cref="FuzzBounds.Timeout"/> and a small multiple of the file's bytes of allocation.
/// (<see cref="TokenizerFilesFuzzTests"/> fuzzes the loader with tokenizer.json; this file adds the template reader, nesting
/// and huge fields.)
/// </summary>
public class TokenizerConfigFuzzTests
{
    private static readonly byte[] TokenizerJson = Encoding.UTF8.GetBytes(
        "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":5,\"content\":\"<|end|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]," +
        "\"normalizer\":null,\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}," +
        "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\\u0120\":3,\"c\":4},\"merges\":[\"a b\"]}}");

    private static string Config(string template) =>
        "{\"eos_token\":\"<|end|>\",\"bos_token\":null,\"pad_token\":{\"content\":\"<|end|>\"},\"add_bos_token\":false," +
        "\"added_tokens_decoder\":{\"5\":{\"content\":\"<|end|>\",\"special\":true}},\"chat_template\":" + System.Text.Json.JsonSerializer.Serialize(template) + "}";

    private static readonly byte[] ValidConfig = Encoding.UTF8.GetBytes(Config(
        "{% for m in messages %}{% if m['role'] == 'user' %}U: {{ m['content'] | trim }}{% else %}A: {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}" +
        "{% if add_generation_prompt %}A:{% endif %}"));

    private static readonly ChatMessage[] Conversation = [ChatMessage.User("ab c"), ChatMessage.Assistant("c")];

    /// <summary>Writes the config beside a valid tokenizer.json, loads the tokenizer and the template and renders; only a typed error naming the file may escape.</summary>
    private static void Load(TempDirectory dir, string what, byte[] config)
    {
        File.WriteAllBytes(dir.File("tokenizer.json"), TokenizerJson);
        File.WriteAllBytes(dir.File("tokenizer_config.json"), config);
        FuzzBounds.Run(what, config.Length + TokenizerJson.Length, () =>
        {
            try { TokenizerLoader.FromDirectory(dir.Path).Encode("ab c"); }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException) { AssertNamesTheConfig(dir, what, e); }
            try { ChatTemplate.FromModelDirectory(dir.Path)?.Render(Conversation, addGenerationPrompt: true); }
            catch (Exception e) when (e is InvalidDataException or ChatTemplateException) { AssertNamesTheConfig(dir, what, e); }
        }, factor: 64, slack: 4 << 20);
        // 64 × the bytes: the template is lexed whole before it is parsed, and each token (a few characters of the
        // template) is an object with its own string: ~48 × the bytes for 4000 nested for-blocks. The slack: the
        // tokenizer library's fixed set-up (regexes, caches) is ~0.7 MB.
    }

    // the template's errors say "tokenizer_config.json of DIR"; the loader's the path
    private static void AssertNamesTheConfig(TempDirectory dir, string what, Exception e) =>
        Assert.True(e.Message.Contains(dir.File("tokenizer_config.json")) || e.Message.Contains(dir.File("tokenizer.json"))
            || (e.Message.Contains("tokenizer_config.json") && e.Message.Contains(dir.Path)), $"{what}: {e.GetType().Name} names no file: {e.Message}");

    private static byte[] Flip(byte[] valid, int[] bits)
    {
        var bytes = (byte[])valid.Clone();
        foreach (int bit in bits) bytes[bit / 8 % bytes.Length] ^= (byte)(1 << (bit % 8));
        return bytes;
    }

    [Fact]
    public void The_valid_config_loads_and_renders()
    {
        using var dir = new TempDirectory();
        Load(dir, "valid", ValidConfig);
        var t = ChatTemplate.FromModelDirectory(dir.Path);
        Assert.NotNull(t);
        Assert.Equal("U: ab cA: c<|end|>A:", t.Render(Conversation, addGenerationPrompt: true));
    }

    [Fact]
    public void Findings_deep_templates_and_invalid_utf8_are_typed_errors()
    {
        using var dir = new TempDirectory();
        File.WriteAllBytes(dir.File("tokenizer.json"), TokenizerJson);
        // found by the nesting cases: 100 000 parentheses, `not`s or nested ifs overflowed the stack while parsing, and
        // operator chains (parsed in a loop) while rendering: the process died; now the parser refuses them
        foreach (string template in (string[])["{{ " + new string('(', 100000) + "1" + new string(')', 100000) + " }}",
                     "{{ " + string.Concat(Enumerable.Repeat("not ", 100000)) + "1 }}",
                     string.Concat(Enumerable.Repeat("{% if 1 %}", 100000)) + string.Concat(Enumerable.Repeat("{% endif %}", 100000)),
                     "{{ 1" + string.Concat(Enumerable.Repeat(" + 1", 200000)) + " }}",
                     "{{ messages" + string.Concat(Enumerable.Repeat("|first", 200000)) + " }}"])
        {
            File.WriteAllText(dir.File("tokenizer_config.json"), Config(template));
            var e = Assert.Throws<ChatTemplateException>(() => ChatTemplate.FromModelDirectory(dir.Path));
            Assert.Contains("nests deeper than", e.Message);
            Assert.Contains(dir.Path, e.Message);
        }
        // the render's backstop: a macro recursing (199 calls, under its own limit) through a deep expression, on a thread
        // with a small stack, runs out of stack as a render error naming the file
        File.WriteAllText(dir.File("tokenizer_config.json"), Config("{% macro f(n) %}{% if n > 0 %}{{ " + new string('(', 90) + "f(n - 1)" +
            new string(')', 90) + " }}{% endif %}{% endmacro %}{{ f(199) }}"));
        var t = ChatTemplate.FromModelDirectory(dir.Path)!;
        Exception? error = null;
        var thread = new Thread(() => { try { t.Render(Conversation, true); } catch (Exception x) { error = x; } }, maxStackSize: 256 << 10);
        thread.Start();
        thread.Join();
        var r = Assert.IsType<ChatTemplateException>(error);
        Assert.Contains("stack ran out", r.Message);
        Assert.Contains(dir.Path, r.Message);
        // found by the nesting cases: 263 nested loops over two messages (2^263 iterations) or a macro calling itself twice
        // rendered for ever; now a render error after JinjaInterpreter.MaxSteps iterations and calls
        foreach (string template in (string[])[string.Concat(Enumerable.Repeat("{% for m in messages %}", 263)) + "x" + string.Concat(Enumerable.Repeat("{% endfor %}", 263)),
                     "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(150) }}"])
        {
            File.WriteAllText(dir.File("tokenizer_config.json"), Config(template));
            var t2 = ChatTemplate.FromModelDirectory(dir.Path)!;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var e = Assert.Throws<ChatTemplateException>(() => t2.Render(Conversation, true));
            Assert.Contains("loop iterations and macro calls", e.Message);
            Assert.Contains(dir.Path, e.Message);
            Assert.True(sw.Elapsed < FuzzBounds.Timeout, $"{sw.Elapsed}");
        }
        // found by the bit flips: invalid UTF-8 inside a string read as InvalidOperationException naming no file
        File.WriteAllBytes(dir.File("tokenizer_config.json"), [.. "{\"eos_token\": \"<|e"u8, 0xC3, .. "|>\"}"u8]);
        var u = Assert.Throws<ChatTemplateException>(() => ChatTemplate.FromModelDirectory(dir.Path));
        Assert.Contains(dir.File("tokenizer_config.json"), u.Message);
        Assert.Contains("UTF-8", u.Message);
    }

    [Fact]
    public void Truncations_and_bit_flips_give_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        Gen.Int[0, ValidConfig.Length - 1].Sample(n => Load(dir, $"config[..{n}]", ValidConfig[..n]), iter: 200, threads: 1);
        Gen.Int[0, int.MaxValue].Array[1, 6].Sample(bits => Load(dir, $"config bits {string.Join(",", bits)}", Flip(ValidConfig, bits)), iter: 500, threads: 1);
    }

    [Fact]
    public void Deep_nesting_and_huge_fields_give_a_typed_error_naming_the_file()
    {
        using var dir = new TempDirectory();
        // JSON nesting in the special tokens and in chat_template
        Gen.Select(Gen.Int[1, 20000], Gen.Int[0, 2]).Sample((depth, where) =>
        {
            string nest = new string('[', depth) + new string(']', depth);
            string json = where switch
            {
                0 => "{\"eos_token\": " + nest + "}",
                1 => "{\"added_tokens_decoder\": {\"5\": {\"content\": \"x\", \"special\": " + nest + "}}}",
                _ => "{\"chat_template\": " + nest + "}",
            };
            Load(dir, $"JSON nesting {depth} at {where}", Encoding.UTF8.GetBytes(json));
        }, iter: 60, threads: 1);
        // Jinja nesting: brackets, blocks, unary chains, else-chains, call chains, operator chains
        Gen.Select(Gen.Int[1, 20000], Gen.Int[0, 5]).Sample((depth, kind) =>
        {
            string R(string s) => string.Concat(Enumerable.Repeat(s, depth));
            string template = kind switch
            {
                0 => "{{ " + R("[") + R("]") + " }}",
                1 => R("{% for m in messages %}") + R("{% endfor %}"),
                2 => "{{ " + R("- ") + "1 }}",
                3 => "{{ 1" + R(" if 0 else 1") + " }}",
                4 => "{{ range" + R("(1)") + " }}",
                _ => "{{ messages" + R("[0]") + R(" + 1") + " }}",
            };
            Load(dir, $"Jinja nesting {depth} of kind {kind}", Encoding.UTF8.GetBytes(Config(template)));
        }, iter: 60, threads: 1);
        // huge ids and many entries in added_tokens_decoder
        Gen.Select(Gen.Long, Gen.Int[1, 20000]).Sample((id, count) =>
        {
            var json = new StringBuilder("{\"added_tokens_decoder\": {");
            json.Append($"\"{id}\": {{\"content\": \"<|huge|>\", \"special\": true}}");
            for (int i = 0; i < count; i++) json.Append($", \"{1000 + i}\": {{\"content\": \"<|t{i}|>\"}}");
            Load(dir, $"added_tokens_decoder of {count} with id {id}", Encoding.UTF8.GetBytes(json.Append("}}").ToString()));
        }, iter: 40, threads: 1);
    }
}
