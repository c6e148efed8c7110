using System.Text.Json;
using System.Text.Json.Serialization;
using Parquet.Serialization;
using Raft.Pipeline.Data;
using Raft.Pipeline.Eval;
using PS = ParquetSharp;
using PSS = ParquetSharp.Schema;

namespace Raft.Pipeline.Tests;

/// <summary>
/// Parquet data files, written by Parquet.Net (the reader's own library) and by ParquetSharp (Apache Arrow's C++ writer,
/// an independent implementation: pyarrow's layout, 3-level lists named list/element), read as the same records as the
/// JSONL lines holding the same values.
/// </summary>
public sealed class ParquetDataTests
{
    public sealed class FlatRow
    {
        [JsonPropertyName("id")] public string? Id { get; set; }
        [JsonPropertyName("prompt")] public string? Prompt { get; set; }
        [JsonPropertyName("answer")] public string? Answer { get; set; }
        [JsonPropertyName("score")] public double Score { get; set; }
    }

    public sealed class Turn
    {
        [JsonPropertyName("role")] public string? Role { get; set; }
        [JsonPropertyName("content")] public string? Content { get; set; }
    }

    public sealed class ChatRow
    {
        [JsonPropertyName("prompt")] public string? Prompt { get; set; }
        [JsonPropertyName("answer")] public string? Answer { get; set; }
        [JsonPropertyName("messages")] public List<Turn>? Messages { get; set; }
    }

    private static readonly JsonSerializerOptions Jsonl = new() { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    private static void WriteParquetNet<T>(string path, IEnumerable<T> rows, int? rowGroupSize = null) where T : class, new()
    {
        using var stream = File.Create(path);
        ParquetSerializer.SerializeAsync(rows, stream, new Parquet.ParquetOptions { RowGroupSize = rowGroupSize }).GetAwaiter().GetResult();
    }

    private static void WriteJsonl<T>(string path, IEnumerable<T> rows) =>
        File.WriteAllLines(path, rows.Select(r => JsonSerializer.Serialize(r, Jsonl)));

    private static IEnumerable<(string Id, string Prompt, string Answer, int Line)> Key(IEnumerable<DomainExample> xs) =>
        xs.Select(x => (x.Id, x.Prompt, x.Answer, x.Line));

    private static List<ChatRow> Chats() =>
    [
        new() { Messages = [new() { Role = "user", Content = "q1" }, new() { Role = "assistant", Content = "a1" }] },
        new() { Prompt = "plain prompt", Answer = "plain answer" },
        new()
        {
            Messages =
            [
                new() { Role = "system", Content = "Be terse." }, new() { Role = "user", Content = "first" }, new() { Role = "assistant", Content = "x" },
                new() { Role = "user", Content = "second ünïcode" }, new() { Role = "assistant", Content = "y" },
            ],
        },
        new() { Messages = [new() { Role = "user", Content = "q4" }, new() { Role = "assistant", Content = "a4" }, new() { Role = "user", Content = "trailing" }] },
    ];

    [Fact]
    public void Flat_columns_written_by_parquet_net_read_as_the_jsonl_lines_do()
    {
        using var dir = new TempDir();
        var rows = Enumerable.Range(0, 7).Select(i => new FlatRow { Id = i % 3 == 0 ? null : $"ex-{i}", Prompt = $"What is {i}+{i}?", Answer = $"{2 * i}", Score = i / 2.0 }).ToList();
        string pq = dir.File("flat.parquet"), jl = dir.File("flat.jsonl");
        WriteParquetNet(pq, rows);
        WriteJsonl(jl, rows);
        var fromParquet = JsonlDataset.Load(pq);
        var fromJsonl = JsonlDataset.Load(jl);
        Assert.Equal(7, fromParquet.Count);
        Assert.Equal(Key(fromJsonl).Select(k => k with { Id = k.Id.Replace("flat.jsonl", "flat.parquet") }), Key(fromParquet));
        Assert.Equal("flat.parquet:1", fromParquet[0].Id);   // the default id: file and 1-based row
        Assert.Equal("ex-1", fromParquet[1].Id);
        Assert.All(fromParquet, x => Assert.Equal(pq, x.Source));
    }

    [Fact]
    public void Messages_as_a_list_of_structs_follow_the_chat_rule()
    {
        using var dir = new TempDir();
        string pq = dir.File("chat.parquet"), jl = dir.File("chat.jsonl");
        WriteParquetNet(pq, Chats());
        WriteJsonl(jl, Chats());
        var xs = JsonlDataset.Load(pq);
        Assert.Equal(Key(JsonlDataset.Load(jl)).Select(k => k with { Id = k.Id.Replace(".jsonl", ".parquet") }), Key(xs));
        Assert.Equal(new[] { ("q1", "a1"), ("plain prompt", "plain answer"), ("second ünïcode", "y"), ("q4", "a4") }, xs.Select(x => (x.Prompt, x.Answer)));
    }

    [Fact]
    public void Row_slices_span_row_groups_and_match_the_jsonl_selection()
    {
        using var dir = new TempDir();
        var rows = Enumerable.Range(0, 10).Select(i => new FlatRow { Id = $"r{i}", Prompt = $"p{i}", Answer = $"a{i}" }).ToList();
        string pq = dir.File("groups.parquet"), jl = dir.File("groups.jsonl");
        WriteParquetNet(pq, rows, rowGroupSize: 3);   // row groups of 3, 3, 3, 1
        WriteJsonl(jl, rows);
        foreach (string s in new[] { "[2:8]", "[:3]", "[3:6]", "[-25%:]", "[9:]", "[:]", "[4:2]", "[50%:60%]" })
        {
            var slice = RowSlice.Parse(s);
            var a = JsonlDataset.Load(pq, rows: slice).Select(x => (x.Id, x.Line));
            var b = JsonlDataset.Load(jl, rows: slice).Select(x => (x.Id, x.Line));
            Assert.Equal(b, a);
        }
        Assert.Equal(new[] { "r2", "r3", "r4", "r5", "r6", "r7" }, JsonlDataset.Load(pq, rows: RowSlice.Parse("[2:8]")).Select(x => x.Id));
    }

    [Fact]
    public void Files_written_by_parquet_sharp_read_the_same()
    {
        using var dir = new TempDir();
        // flat: prompt/answer strings (optional), id int64 (required), snappy
        string flat = dir.File("arrow-flat.parquet");
        using (var file = new PS.ParquetFileWriter(flat, new PS.Column[] { new PS.Column<long>("id"), new PS.Column<string>("prompt"), new PS.Column<string>("answer") }))
        {
            using var group = file.AppendRowGroup();
            using (var w = group.NextColumn().LogicalWriter<long>()) w.WriteBatch(new long[] { 10, 11, 12 });
            using (var w = group.NextColumn().LogicalWriter<string>()) w.WriteBatch(new[] { "Add 1 and 2.", "Say hi.", "Ünïcode?" });
            using (var w = group.NextColumn().LogicalWriter<string>()) w.WriteBatch(new[] { "3", "hi", "yes" });
            file.Close();
        }
        var xs = JsonlDataset.Load(flat);
        Assert.Equal(new[] { ("10", "Add 1 and 2.", "3", 1), ("11", "Say hi.", "hi", 2), ("12", "Ünïcode?", "yes", 3) }, Key(xs).Select(k => (k.Id, k.Prompt, k.Answer, k.Line)));

        // nested: messages as list<struct<role, content>> with an optional list, optional elements and optional fields, zstd,
        // two row groups; a null list, an empty list and a null element make the level arithmetic visible
        string chat = dir.File("arrow-chat.parquet");
        using (var role = new PSS.PrimitiveNode("role", PS.Repetition.Optional, PS.LogicalType.String(), PS.PhysicalType.ByteArray))
        using (var content = new PSS.PrimitiveNode("content", PS.Repetition.Optional, PS.LogicalType.String(), PS.PhysicalType.ByteArray))
        using (var element = new PSS.GroupNode("element", PS.Repetition.Optional, new PSS.Node[] { role, content }))
        using (var list = new PSS.GroupNode("list", PS.Repetition.Repeated, new PSS.Node[] { element }))
        using (var messages = new PSS.GroupNode("messages", PS.Repetition.Optional, new PSS.Node[] { list }, PS.LogicalType.List()))
        using (var prompt = new PSS.PrimitiveNode("prompt", PS.Repetition.Optional, PS.LogicalType.String(), PS.PhysicalType.ByteArray))
        using (var answer = new PSS.PrimitiveNode("answer", PS.Repetition.Optional, PS.LogicalType.String(), PS.PhysicalType.ByteArray))
        using (var schema = new PSS.GroupNode("schema", PS.Repetition.Required, new PSS.Node[] { prompt, answer, messages }))
        using (var builder = new PS.WriterPropertiesBuilder())
        using (var properties = builder.Compression(PS.Compression.Zstd).Build())
        using (var file = new PS.ParquetFileWriter(chat, schema, properties))
        {
            static PS.Nested<string?>?[]? Turns(params string?[]? values) => values?.Select(v => v == "<null element>" ? (PS.Nested<string?>?)null : new PS.Nested<string?>(v)).ToArray();
            void Group(string?[] prompts, string?[] answers, PS.Nested<string?>?[]?[] roles, PS.Nested<string?>?[]?[] contents)
            {
                using var g = file.AppendRowGroup();
                using (var w = g.NextColumn().LogicalWriter<string?>()) w.WriteBatch(prompts);
                using (var w = g.NextColumn().LogicalWriter<string?>()) w.WriteBatch(answers);
                using (var w = g.NextColumn().LogicalWriter<PS.Nested<string?>?[]?>()) w.WriteBatch(roles);
                using (var w = g.NextColumn().LogicalWriter<PS.Nested<string?>?[]?>()) w.WriteBatch(contents);
            }
            Group([null, "fallback prompt"], [null, "fallback answer"],
                [Turns("system", "user", "assistant"), Turns()], [Turns("terse", "q1", "a1"), Turns()]);
            Group([null, null], [null, null],
                [Turns("user", "<null element>", "assistant"), Turns("user", "assistant", "user", "assistant")],
                [Turns("q2", "<null element>", "a2"), Turns("first", "x", "second", "y")]);
            file.Close();
        }
        // row 2: an empty list falls back to prompt/answer? No: a non-null messages field wins, as in JSONL, and an empty one has no assistant turn
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(chat));
        Assert.Equal(2, e.Line);
        Assert.Contains($"{chat} row 2: field \"messages\" has no assistant turn (0 turns)", e.Message);
        // row 3: the null element is an object-less turn, refused by name as the JSONL form would be
        var r = JsonlDataset.Read(chat, skipBadLines: true);
        Assert.Equal(2, r.SkippedLines);
        Assert.Equal(new[] { ("q1", "a1", 1), ("second", "y", 4) }, r.Examples.Select(x => (x.Prompt, x.Answer, x.Line)));
        var third = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(chat, rows: RowSlice.Parse("[2:3]")));
        Assert.Contains("row 3: \"messages[1].role\" expected inside an object, got null", third.Message);
    }

    [Fact]
    public void Eval_sets_read_prompt_answer_extractor_and_instructions_columns()
    {
        using var dir = new TempDir();
        string pq = dir.File("evalset.parquet"), jl = dir.File("evalset.jsonl");
        var rows = new List<EvalRow>
        {
            new() { Id = "e1", Prompt = "What is 6 times 7?", Answer = "42", Extractor = "last_number", Instructions = [new() { Kind = "max_words", Value = "5" }, new() { Kind = "lowercase" }] },
            new() { Prompt = "Say hello.", Instructions = [] },
            new() { Prompt = "Name a colour.", Answer = "red" },
        };
        WriteParquetNet(pq, rows);
        WriteJsonl(jl, rows);
        var a = EvalSet.Load(pq);
        var b = EvalSet.Load(jl);
        Assert.Equal("evalset", a.Name);
        Assert.Equal(b.Items.Select(i => (i.FullPrompt, i.Answer, i.Extractor.GetType(), i.Instructions.Count, i.Line)),
                     a.Items.Select(i => (i.FullPrompt, i.Answer, i.Extractor.GetType(), i.Instructions.Count, i.Line)));
        Assert.Equal(new FormatInstruction("max_words", "5"), a.Items[0].Instructions[0]);
        Assert.Equal(2, EvalSet.Load(pq, rows: RowSlice.Parse("[1:]")).Items.Count);
    }

    public sealed class EvalRow
    {
        [JsonPropertyName("id")] public string? Id { get; set; }
        [JsonPropertyName("prompt")] public string? Prompt { get; set; }
        [JsonPropertyName("answer")] public string? Answer { get; set; }
        [JsonPropertyName("extractor")] public string? Extractor { get; set; }
        [JsonPropertyName("instructions")] public List<InstructionRow>? Instructions { get; set; }
    }

    public sealed class InstructionRow
    {
        [JsonPropertyName("kind")] public string? Kind { get; set; }
        [JsonPropertyName("value")] public string? Value { get; set; }
    }

    public sealed class WrongTypes
    {
        [JsonPropertyName("prompt")] public int Prompt { get; set; }
        [JsonPropertyName("answer")] public string? Answer { get; set; }
    }

    public sealed class OtherNames
    {
        [JsonPropertyName("question")] public string? Question { get; set; }
        [JsonPropertyName("response")] public long Response { get; set; }
    }

    public sealed class StringMessages
    {
        [JsonPropertyName("messages")] public List<string>? Messages { get; set; }
    }

    public sealed class RoleOnly { [JsonPropertyName("role")] public string? Role { get; set; } }

    public sealed class HalfMessages
    {
        [JsonPropertyName("messages")] public List<RoleOnly>? Messages { get; set; }
    }

    [Fact]
    public void Missing_or_mistyped_columns_name_the_file_the_column_and_what_is_expected()
    {
        using var dir = new TempDir();
        DataFormatException Fails<T>(string name, T row) where T : class, new()
        {
            string path = dir.File(name);
            WriteParquetNet(path, [row]);
            var e = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(path));
            Assert.Equal(0, e.Line);
            Assert.False(e.IsRecord);
            Assert.StartsWith($"{path}: ", e.Message);
            return e;
        }
        Assert.Contains("column \"prompt\" is an int32 column; expected a string column", Fails("types.parquet", new WrongTypes { Prompt = 3, Answer = "a" }).Message);
        var names = Fails("names.parquet", new OtherNames { Question = "q", Response = 1 }).Message;
        Assert.Contains("no column \"messages\"; expected columns \"prompt\" and \"answer\", or \"messages\"", names);
        Assert.Contains("(the file has: \"question\" (a string column), \"response\" (an int64 column))", names);
        Assert.Contains("column \"messages\" is a list of string; expected a list of structs with fields role, content",
            Fails("strings.parquet", new StringMessages { Messages = ["hi"] }).Message);
        Assert.Contains("column \"messages\": its structs have no field \"content\" (fields: \"role\")",
            Fails("half.parquet", new HalfMessages { Messages = [new() { Role = "user" }] }).Message);
        // an eval set needs only a prompt column
        string evalPath = dir.File("eval-names.parquet");
        WriteParquetNet(evalPath, [new OtherNames { Question = "q" }]);
        Assert.Contains("no column \"prompt\"; expected columns \"prompt\"", Assert.Throws<DataFormatException>(() => EvalSet.Load(evalPath)).Message);
    }

    [Fact]
    public void Bad_rows_name_the_row_and_skip_like_bad_lines()
    {
        using var dir = new TempDir();
        string path = dir.File("rows.parquet");
        WriteParquetNet(path, [new FlatRow { Prompt = "p1", Answer = "a1" }, new FlatRow { Prompt = "p2", Answer = "a2" }, new FlatRow { Prompt = " ", Answer = "a3" }, new FlatRow { Prompt = "p4" }]);
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(path));
        Assert.Equal($"{path} row 3: field \"prompt\" is empty", e.Message);
        Assert.True(e.IsRecord);
        var logged = new List<string>();
        var r = JsonlDataset.Read(path, skipBadLines: true, log: logged.Add);
        Assert.Equal(2, r.SkippedLines);
        Assert.Equal(new[] { "p1", "p2" }, r.Examples.Select(x => x.Prompt));
        Assert.Equal(new[] { $"skipped: {path} row 3: field \"prompt\" is empty", $"skipped: {path} row 4: field \"answer\" is missing" }, logged);
        // rows outside the selection are not parsed
        Assert.Equal(2, JsonlDataset.Load(path, rows: RowSlice.Parse("[:2]")).Count);
    }

    [Fact]
    public void A_file_that_is_not_parquet_is_named()
    {
        using var dir = new TempDir();
        string path = dir.Write("fake.parquet", "{\"prompt\": \"p\", \"answer\": \"a\"}\n");
        var e = Assert.Throws<DataFormatException>(() => JsonlDataset.Load(path));
        Assert.StartsWith($"{path}: not a readable Parquet file", e.Message);
        Assert.Throws<FileNotFoundException>(() => JsonlDataset.Load(dir.File("absent.parquet")));
    }
}
