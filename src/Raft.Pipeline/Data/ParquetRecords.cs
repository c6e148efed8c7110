using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;

namespace Raft.Pipeline.Data;

/// <summary>What a column of a Parquet data file must hold.</summary>
public enum ParquetColumnKind
{
    /// <summary>A string column (UTF-8 byte array), one value a row.</summary>
    Text,
    /// <summary>A string or integer column (an id).</summary>
    TextOrInteger,
    /// <summary>A string or numeric column.</summary>
    TextOrNumber,
    /// <summary>A list of structs (<c>list&lt;struct&lt;…&gt;&gt;</c>), e.g. <c>messages</c>: [{role, content}].</summary>
    StructList,
}

/// <summary>One column a record kind reads: its name (the JSONL key it stands for), what it holds, and for a list of structs the struct's fields.</summary>
/// <param name="Name">The column name, exactly the JSONL key.</param>
/// <param name="Kind">What it must hold.</param>
/// <param name="Required">A struct field that must exist (e.g. <c>role</c> and <c>content</c> of a message).</param>
/// <param name="Fields">For <see cref="ParquetColumnKind.StructList"/>: the struct's fields read.</param>
public sealed record ParquetColumn(string Name, ParquetColumnKind Kind, bool Required = false, IReadOnlyList<ParquetColumn>? Fields = null);

/// <summary>
/// The columns a record kind reads from a Parquet file, and which of them a file must have: at least one of
/// <see cref="Alternatives"/> (each a set of columns that must all be present). Other columns are not read.
/// </summary>
/// <param name="Columns">Every column the records use.</param>
/// <param name="Alternatives">The column sets a file needs one of (e.g. prompt + answer, or messages).</param>
public sealed record ParquetLayout(IReadOnlyList<ParquetColumn> Columns, IReadOnlyList<IReadOnlyList<string>> Alternatives);

/// <summary>
/// Reads a Parquet data file (a Hugging Face dataset's format) as the same records as its JSONL form: each row becomes
/// the JSON object that the JSONL line would be (a string column a string field, a list of structs an array of objects,
/// a null an absent field) and goes through the same parser, so every field rule and error holds for both formats; an
/// error names the file and the 1-based row. The columns are checked against the record kind's
/// <see cref="ParquetLayout"/> before any row is read: a missing column or a column of another type is a
/// <see cref="DataFormatException"/> naming the file, the column, what it is and what is expected. Only the layout's
/// columns are read, only in the row groups a <see cref="RowSlice"/> selects.
/// </summary>
public static class ParquetRecords
{
    /// <summary>True when <paramref name="path"/> names a Parquet file (extension <c>.parquet</c>, any case).</summary>
    public static bool IsParquet(string path) => path.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Parses the rows of <paramref name="path"/> selected by <paramref name="rows"/> (all when null) with
    /// <paramref name="parse"/>. A row for which it throws a <see cref="DataFormatException"/> stops the read, or, with
    /// <paramref name="skipBadRows"/>, is reported to <paramref name="log"/> and counted; a problem of the file (not
    /// Parquet, a column missing or mistyped) always stops it.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static (List<T> Records, int SkippedRows) Read<T>(string path, ParquetLayout layout, Func<JsonlLine, T> parse,
        bool skipBadRows = false, Action<string>? log = null, RowSlice? rows = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(parse);
        if (!File.Exists(path)) throw new FileNotFoundException($"Parquet file not found: {Path.GetFullPath(path)}", path);
        using var stream = File.OpenRead(path);
        ParquetReader reader;
        try { reader = ParquetReader.CreateAsync(stream, leaveStreamOpen: true).GetAwaiter().GetResult(); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new DataFormatException(path, $"not a readable Parquet file ({e.Message})", e);
        }
        try
        {
            var columns = Resolve(path, reader.Schema, layout);
            long total = reader.RowGroups.Sum(g => g.RowCount);
            if (total > int.MaxValue) throw new DataFormatException(path, $"{total} rows; at most {int.MaxValue} can be read");
            var (start, end) = rows?.Resolve((int)total) ?? (0, (int)total);
            var records = new List<T>();
            int skipped = 0;
            long rowBase = 0;
            foreach (var group in reader.RowGroups)
            {
                int n = checked((int)group.RowCount);
                long first = Math.Max(start, rowBase), last = Math.Min(end, rowBase + n);
                if (first < last)
                {
                    var values = columns.Select(c => ReadColumn(path, group, c, n)).ToArray();
                    for (long row = first; row < last; row++)
                    {
                        int r = (int)(row - rowBase);
                        var obj = new JsonObject();
                        for (int c = 0; c < columns.Count; c++)
                            if (values[c][r] is { } v) obj[columns[c].Spec.Name] = v;
                        var line = new JsonlLine(path, checked((int)row + 1), JsonSerializer.SerializeToElement(obj));
                        try { records.Add(parse(line)); }
                        catch (DataFormatException e) when (skipBadRows && e.IsRecord)
                        {
                            skipped++;
                            log?.Invoke($"skipped: {e.Message}");
                        }
                    }
                }
                rowBase += n;
            }
            return (records, skipped);
        }
        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    /// <summary>The number of rows of a Parquet file (from its footer, no column read).</summary>
    public static long CountRows(string path)
    {
        using var stream = File.OpenRead(path);
        try
        {
            var reader = ParquetReader.CreateAsync(stream, leaveStreamOpen: true).GetAwaiter().GetResult();
            try { return reader.RowGroups.Sum(g => g.RowCount); }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Exception e) when (e is not OutOfMemoryException and not DataFormatException)
        {
            throw new DataFormatException(path, $"not a readable Parquet file ({e.Message})", e);
        }
    }

    private sealed record Bound(ParquetColumn Spec, Field Field);

    /// <summary>The layout's columns that the file has, each checked for its type; a missing required set is named.</summary>
    private static List<Bound> Resolve(string path, ParquetSchema schema, ParquetLayout layout)
    {
        var byName = schema.Fields.GroupBy(f => f.Name, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        string have = schema.Fields.Count == 0 ? "none" : string.Join(", ", schema.Fields.Select(f => $"\"{f.Name}\" ({Describe(f)})"));
        if (layout.Alternatives.Count > 0 && !layout.Alternatives.Any(set => set.All(byName.ContainsKey)))
        {
            var best = layout.Alternatives.OrderBy(set => set.Count(c => !byName.ContainsKey(c))).First();
            string missing = string.Join(" and ", best.Where(c => !byName.ContainsKey(c)).Select(c => $"\"{c}\""));
            string expected = string.Join(", or ", layout.Alternatives.Select(set => string.Join(" and ", set.Select(c => $"\"{c}\""))));
            throw new DataFormatException(path, $"no column {missing}; expected columns {expected} (the file has: {have})");
        }
        var bound = new List<Bound>();
        foreach (var spec in layout.Columns)
        {
            if (!byName.TryGetValue(spec.Name, out var field)) continue;
            Check(path, spec, field, spec.Name, repetition: 0);
            bound.Add(new Bound(spec, field));
        }
        return bound;
    }

    /// <summary>Checks <paramref name="field"/> against <paramref name="spec"/>; a scalar must have <paramref name="repetition"/> (0 at the top, 1 inside a list).</summary>
    private static void Check(string path, ParquetColumn spec, Field field, string label, int repetition)
    {
        string expected = spec.Kind switch
        {
            ParquetColumnKind.Text => "a string column",
            ParquetColumnKind.TextOrInteger => "a string or integer column",
            ParquetColumnKind.TextOrNumber => "a string or numeric column",
            _ => $"a list of structs with fields {string.Join(", ", spec.Fields!.Select(f => f.Name))}",
        };
        bool ok = spec.Kind switch
        {
            ParquetColumnKind.Text => IsScalar(field, repetition, IsString),
            ParquetColumnKind.TextOrInteger => IsScalar(field, repetition, t => IsString(t) || IsInteger(t)),
            ParquetColumnKind.TextOrNumber => IsScalar(field, repetition, t => IsString(t) || IsInteger(t) || t == typeof(float) || t == typeof(double)),
            _ => repetition == 0 && field is ListField { Item: StructField } list && list.MaxRepetitionLevel == 1,
        };
        if (!ok) throw new DataFormatException(path, $"column \"{label}\" is {Describe(field)}; expected {expected}");
        if (spec.Kind != ParquetColumnKind.StructList) return;
        var item = (StructField)((ListField)field).Item;
        foreach (var sub in spec.Fields!)
        {
            var f = item.Fields.FirstOrDefault(x => x.Name == sub.Name);
            if (f is null)
            {
                if (!sub.Required) continue;
                throw new DataFormatException(path, $"column \"{label}\": its structs have no field \"{sub.Name}\" (fields: {string.Join(", ", item.Fields.Select(x => $"\"{x.Name}\""))}); expected {expected}");
            }
            Check(path, sub, f, $"{label}.{sub.Name}", repetition: 1);
        }
    }

    private static bool IsScalar(Field f, int repetition, Func<Type, bool> type) => f is DataField d && d.MaxRepetitionLevel == repetition && type(d.ClrType);

    /// <summary>A UTF-8 string column: Parquet.Net 6 reads it as <see cref="ReadOnlyMemory{T}"/> of char (older versions: string).</summary>
    private static bool IsString(Type t) => t == typeof(string) || t == typeof(ReadOnlyMemory<char>);

    private static bool IsInteger(Type t) =>
        t == typeof(int) || t == typeof(long) || t == typeof(short) || t == typeof(sbyte) || t == typeof(byte) || t == typeof(ushort) || t == typeof(uint) || t == typeof(ulong);

    /// <summary>A column's type in words, as Parquet tools name them: "a string column", "an int64 column", "a list column", …</summary>
    internal static string Describe(Field f) => f switch
    {
        ListField { Item: StructField } => "a list of structs",
        ListField l => $"a list of {(l.Item is DataField d ? TypeName(d.ClrType) : l.Item.SchemaType.ToString().ToLowerInvariant())}",
        StructField => "a struct column",
        MapField => "a map column",
        DataField { MaxRepetitionLevel: > 0 } d when d.Path.ToList().Count == 1 => $"a repeated {TypeName(d.ClrType)} column",
        DataField { MaxRepetitionLevel: > 1 } d => $"a nested list of {TypeName(d.ClrType)}",
        DataField d => TypeName(d.ClrType) is var n && "aeio".Contains(n[0]) ? $"an {n} column" : $"a {n} column",
        _ => $"a {f.SchemaType.ToString().ToLowerInvariant()} column",
    };

    private static string TypeName(Type t) =>
        IsString(t) ? "string" : t == typeof(int) ? "int32" : t == typeof(long) ? "int64" : t == typeof(short) ? "int16" :
        t == typeof(sbyte) ? "int8" : t == typeof(byte) ? "uint8" : t == typeof(ushort) ? "uint16" : t == typeof(uint) ? "uint32" :
        t == typeof(ulong) ? "uint64" : t == typeof(float) ? "float" : t == typeof(double) ? "double" : t == typeof(bool) ? "boolean" :
        t == typeof(byte[]) ? "binary (no UTF-8 annotation)" : t == typeof(DateTime) ? "timestamp" : t == typeof(decimal) ? "decimal" :
        t.Name.ToLowerInvariant();

    /// <summary>One column of one row group as one JSON value per row (null: absent).</summary>
    private static JsonNode?[] ReadColumn(string path, ParquetRowGroupReader group, Bound column, int rows)
    {
        try
        {
            if (column.Field is DataField d) return Scalars(path, group, d, rows, column.Spec.Name);
            return StructLists(path, group, (ListField)column.Field, column.Spec, rows);
        }
        catch (Exception e) when (e is not DataFormatException and not OutOfMemoryException)
        {
            throw new DataFormatException(path, $"column \"{column.Spec.Name}\" does not read ({e.Message})", e);
        }
    }

    private static JsonNode?[] Scalars(string path, ParquetRowGroupReader group, DataField field, int rows, string label)
    {
        var leaf = Leaf.Read(group, field);
        if (leaf.Count != rows) throw new DataFormatException(path, $"column \"{label}\" has {leaf.Count} values in a row group of {rows} rows");
        var result = new JsonNode?[rows];
        int vi = 0;
        for (int i = 0; i < rows; i++)
            if (leaf.Def is null || leaf.Def[i] == field.MaxDefinitionLevel) result[i] = leaf.Values[vi++];
        return result;
    }

    /// <summary>
    /// A list of structs, reassembled from its leaf columns' repetition and definition levels (Dremel): repetition 0
    /// starts a row; a definition below the list's "empty" level is a null list, at it an empty list, above it an element,
    /// which is null below the struct's level; a field is null below its own.
    /// </summary>
    private static JsonNode?[] StructLists(string path, ParquetRowGroupReader group, ListField list, ParquetColumn spec, int rows)
    {
        var item = (StructField)list.Item;
        int emptyLevel = list.MaxDefinitionLevel - 1, elementLevel = item.MaxDefinitionLevel;
        // rows → elements (null: a null list; an element null: a null struct) → the struct's fields read
        List<JsonObject?>?[]? shape = null;
        foreach (var sub in spec.Fields!)
        {
            if (item.Fields.FirstOrDefault(x => x.Name == sub.Name) is not DataField field) continue;
            var leaf = Leaf.Read(group, field);
            if (leaf.Rep is null || leaf.Def is null) throw new DataFormatException(path, $"column \"{spec.Name}.{sub.Name}\" has no repetition levels; expected a list");
            var built = new List<JsonObject?>?[rows];
            int row = -1, vi = 0;
            for (int i = 0; i < leaf.Count; i++)
            {
                if (leaf.Rep[i] == 0)
                {
                    if (++row >= rows) throw new DataFormatException(path, $"column \"{spec.Name}.{sub.Name}\" has more rows than its row group's {rows}");
                }
                else if (row < 0) throw new DataFormatException(path, $"column \"{spec.Name}.{sub.Name}\" does not start a row at its first value");
                int def = leaf.Def[i];
                if (def < emptyLevel) continue;                  // a null list
                built[row] ??= [];
                if (def == emptyLevel) continue;                 // an empty list
                if (def < elementLevel) { built[row]!.Add(null); continue; }
                var element = new JsonObject();
                if (def == field.MaxDefinitionLevel) element[sub.Name] = leaf.Values[vi++];
                built[row]!.Add(element);
            }
            if (row + 1 != rows) throw new DataFormatException(path, $"column \"{spec.Name}.{sub.Name}\" has {row + 1} rows in a row group of {rows}");
            if (shape is null) { shape = built; continue; }
            for (int r = 0; r < rows; r++)
            {
                var a = shape[r]; var b = built[r];
                if ((a is null) != (b is null) || (a is not null && a.Count != b!.Count))
                    throw new DataFormatException(path, $"column \"{spec.Name}\": its fields disagree on the length of row {r + 1}'s list");
                if (a is null) continue;
                for (int j = 0; j < a.Count; j++)
                    if (a[j] is { } target && b![j] is { } more)
                        foreach (var (k, v) in more.ToList()) { more.Remove(k); target[k] = v; }
            }
        }
        var result = new JsonNode?[rows];
        for (int r = 0; r < rows; r++)
            if (shape?[r] is { } elements) result[r] = new JsonArray(elements.Select(e => (JsonNode?)e).ToArray());
        return result;
    }

    /// <summary>A leaf column's values (the non-null ones, in order, as JSON values), definition and repetition levels.</summary>
    private sealed record Leaf(JsonNode[] Values, int[]? Def, int[]? Rep, int Count)
    {
        public static Leaf Read(ParquetRowGroupReader group, DataField field)
        {
            var t = field.ClrType;
            if (IsString(t)) return Read<ReadOnlyMemory<char>>(group, field, v => JsonValue.Create(new string(v.Span)));
            if (t == typeof(int)) return Read<int>(group, field, v => JsonValue.Create(v));
            if (t == typeof(long)) return Read<long>(group, field, v => JsonValue.Create(v));
            if (t == typeof(short)) return Read<short>(group, field, v => JsonValue.Create(v));
            if (t == typeof(sbyte)) return Read<sbyte>(group, field, v => JsonValue.Create(v));
            if (t == typeof(byte)) return Read<byte>(group, field, v => JsonValue.Create(v));
            if (t == typeof(ushort)) return Read<ushort>(group, field, v => JsonValue.Create(v));
            if (t == typeof(uint)) return Read<uint>(group, field, v => JsonValue.Create(v));
            if (t == typeof(ulong)) return Read<ulong>(group, field, v => JsonValue.Create(v));
            if (t == typeof(float)) return Read<float>(group, field, v => Number(v));
            if (t == typeof(double)) return Read<double>(group, field, v => Number(v));
            throw new NotSupportedException($"values of type {t.Name}");
        }

        // JSON has no NaN or infinity: such a value is its text, which the record's parser then refuses by name.
        private static JsonNode Number(double v) => double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create(v.ToString(CultureInfo.InvariantCulture));

        private static Leaf Read<TValue>(ParquetRowGroupReader group, DataField field, Func<TValue, JsonNode> node) where TValue : struct
        {
            long numValues = group.GetMetadata(field)?.MetaData?.NumValues
                             ?? throw new InvalidDataException($"no column chunk for {field.Path} in this row group");
            int n = checked((int)numValues);
            var values = new TValue[n];
            int[]? def = field.MaxDefinitionLevel > 0 ? new int[n] : null;
            int[]? rep = field.MaxRepetitionLevel > 0 ? new int[n] : null;
            // (Memory<int>?)null, not null: a bare null converts to an empty Memory<int> through its array conversion
            Memory<int>? defLevels = def is null ? (Memory<int>?)null : def.AsMemory(), repLevels = rep is null ? (Memory<int>?)null : rep.AsMemory();
            group.ReadRawAsync<TValue>(field, values.AsMemory(), defLevels, repLevels).AsTask().GetAwaiter().GetResult();
            int present = def is null ? n : def.Count(d => d == field.MaxDefinitionLevel);
            var nodes = new JsonNode[present];
            for (int i = 0; i < present; i++) nodes[i] = node(values[i]);
            return new Leaf(nodes, def, rep, n);
        }
    }
}
