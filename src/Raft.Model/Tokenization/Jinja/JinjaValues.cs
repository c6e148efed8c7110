using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace Raft.Model.Tokenization.Jinja;

/// <summary>
/// A runtime value of the template language, with <c>@huggingface/jinja</c>'s types and JavaScript's conversions
/// (numbers are doubles, integers and floats told apart by their origin; strings are UTF-16 as in JavaScript).
/// </summary>
internal abstract class JValue
{
    public abstract string TypeName { get; }
    public virtual bool Truthy => true;
    /// <summary><c>toString()</c> of the runtime value (what <c>{{ x }}</c> writes).</summary>
    public abstract string Str();
    /// <summary><c>value.toString()</c> of the underlying JavaScript value (what <c>+</c> and <c>~</c> concatenate).</summary>
    public virtual string RawStr() => Str();
    public override string ToString() => Str();
}

internal sealed class JUndefined : JValue
{
    public static readonly JUndefined Instance = new();
    public override string TypeName => "UndefinedValue";
    public override bool Truthy => false;
    public override string Str() => "undefined";
}

internal sealed class JNull : JValue
{
    public static readonly JNull Instance = new();
    public override string TypeName => "NullValue";
    public override bool Truthy => false;
    public override string Str() => "null";
}

internal sealed class JBool(bool value) : JValue
{
    public static readonly JBool True = new(true), False = new(false);
    public static JBool Of(bool b) => b ? True : False;
    public bool Value { get; } = value;
    public override string TypeName => "BooleanValue";
    public override bool Truthy => Value;
    public override string Str() => Value ? "true" : "false";
}

/// <summary>An IntegerValue or a FloatValue: a double either way, as in JavaScript.</summary>
internal sealed class JNumber(double value, bool isFloat) : JValue
{
    public double Value { get; } = value;
    public bool IsFloat { get; } = isFloat;
    public static JNumber Int(double v) => new(v, false);
    public static JNumber Float(double v) => new(v, true);
    public override string TypeName => IsFloat ? "FloatValue" : "IntegerValue";
    public override bool Truthy => Value != 0 && !double.IsNaN(Value);
    public override string Str()
    {
        if (!IsFloat) return JsNumber.ToString(Value);
        if (Value == 0 && double.IsNegative(Value)) return "-0.0";
        return Value % 1 == 0 ? JsNumber.ToFixed1(Value) : JsNumber.ToString(Value);
    }
    public override string RawStr() => JsNumber.ToString(Value);
}

internal sealed class JString(string value) : JValue
{
    public string Value { get; } = value;
    public override string TypeName => "StringValue";
    public override bool Truthy => Value.Length > 0;
    public override string Str() => Value;
}

internal sealed class JArray(List<JValue> items, bool tuple = false) : JValue
{
    public List<JValue> Items { get; } = items;
    public bool IsTuple { get; } = tuple;
    public override string TypeName => IsTuple ? "TupleValue" : "ArrayValue";
    public override bool Truthy => Items.Count > 0;
    public override string Str() => Json.Write(this, new JsonOptions(), 0, convertUndefinedToNull: false);
    // Array.prototype.toString joins the elements' own toString() (the runtime values', so "3,1,2").
    public override string RawStr() => string.Join(",", Items.Select(i => i.Str()));
}

internal enum ObjectKind { Plain, Kwargs, Loop }

internal sealed class JObject(OrderedDictionary<string, JValue> map, ObjectKind kind = ObjectKind.Plain) : JValue
{
    public OrderedDictionary<string, JValue> Map { get; } = map;
    public ObjectKind Kind { get; } = kind;
    public override string TypeName => Kind == ObjectKind.Kwargs ? "KeywordArgumentsValue" : "ObjectValue";
    public override bool Truthy => Map.Count > 0;
    public override string Str() => Json.Write(this, new JsonOptions(), 0, convertUndefinedToNull: false);
    public override string RawStr() => "[object Map]";
}

internal sealed class JNamespace(OrderedDictionary<string, JValue> map) : JValue
{
    public OrderedDictionary<string, JValue> Map { get; } = map;
    public override string TypeName => "NamespaceValue";
    public override string Str() => Json.Write(this, new JsonOptions(), 0, convertUndefinedToNull: false);
    public override string RawStr() => "[object Map]";
}

internal sealed class JFunction(Func<List<JValue>, JinjaEnv, JValue> fn) : JValue
{
    public Func<List<JValue>, JinjaEnv, JValue> Fn { get; } = fn;
    public override string TypeName => "FunctionValue";
    public override string Str() => "[function]";
}

internal sealed record JsonOptions(int? Indent = null, bool EnsureAscii = false, (string Item, string Key)? Separators = null, bool SortKeys = false);

/// <summary>The <c>tojson</c> filter's serialisation (Python's <c>json.dumps</c> layout, JavaScript's string escapes).</summary>
internal static class Json
{
    public static string Write(JValue input, JsonOptions o, int depth, bool convertUndefinedToNull = true)
    {
        string itemSep, keySep;
        if (o.Separators is { } s) (itemSep, keySep) = s;
        else if (o.Indent is int i && i != 0) (itemSep, keySep) = (",", ": ");
        else (itemSep, keySep) = (", ", ": ");
        switch (input)
        {
            case JNull: return "null";
            case JUndefined: return convertUndefinedToNull ? "null" : "undefined";
            case JNumber n: return double.IsFinite(n.Value) ? JsNumber.ToString(n.Value) : "null";
            case JBool b: return b.Str();
            case JString str: return Quote(str.Value, o.EnsureAscii);
            case JArray { IsTuple: false } or JNamespace or JObject { Kind: not ObjectKind.Kwargs }:
            {
                bool indent = o.Indent is int w && w != 0;
                string indentValue = indent ? new string(' ', Math.Max(0, o.Indent!.Value)) : "";
                string basePadding = "\n" + string.Concat(Enumerable.Repeat(indentValue, depth));
                string childPadding = basePadding + indentValue;
                if (input is JArray a)
                {
                    var core = a.Items.Select(x => Write(x, o, depth + 1, convertUndefinedToNull)).ToList();
                    return indent && core.Count > 0
                        ? "[" + childPadding + string.Join(itemSep + childPadding, core) + basePadding + "]"
                        : "[" + string.Join(itemSep, core) + "]";
                }
                var map = input is JObject obj ? obj.Map : ((JNamespace)input).Map;
                IEnumerable<KeyValuePair<string, JValue>> entries = map;
                if (o.SortKeys) entries = entries.OrderBy(kv => kv.Key, StringComparer.InvariantCulture);
                var parts = entries.Select(kv =>
                {
                    string v = Quote(kv.Key, o.EnsureAscii) + keySep + Write(kv.Value, o, depth + 1, convertUndefinedToNull);
                    return indent ? childPadding + v : v;
                }).ToList();
                return indent && parts.Count > 0 ? "{" + string.Join(itemSep, parts) + basePadding + "}" : "{" + string.Join(itemSep, parts) + "}";
            }
            default:
                throw new JinjaRenderException($"Cannot convert to JSON: {input.TypeName}");
        }
    }

    /// <summary>JavaScript's <c>JSON.stringify(string)</c>; with <paramref name="ensureAscii"/> every char from U+007F up as \uXXXX.</summary>
    public static string Quote(string s, bool ensureAscii)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                    {
                        if (ensureAscii) sb.Append("\\u").Append(((int)c).ToString("x4")).Append("\\u").Append(((int)s[i + 1]).ToString("x4"));
                        else sb.Append(c).Append(s[i + 1]);
                        i++;
                    }
                    else if (char.IsSurrogate(c) || (ensureAscii && c >= 0x7f)) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}

/// <summary>JavaScript's number ↔ string conversions.</summary>
internal static class JsNumber
{
    /// <summary><c>Number.prototype.toString()</c> (ECMA-262 Number::toString, shortest round-trip digits).</summary>
    public static string ToString(double d)
    {
        if (double.IsNaN(d)) return "NaN";
        if (d == 0) return "0";
        if (double.IsInfinity(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d < 0) return "-" + ToString(-d);
        var (digits, n) = Digits(d);
        int k = digits.Length;
        if (k <= n && n <= 21) return digits + new string('0', n - k);
        if (0 < n && n <= 21) return digits[..n] + "." + digits[n..];
        if (-6 < n && n <= 0) return "0." + new string('0', -n) + digits;
        int e = n - 1;
        string exp = (e >= 0 ? "+" : "-") + Math.Abs(e).ToString(CultureInfo.InvariantCulture);
        return k == 1 ? digits + "e" + exp : digits[0] + "." + digits[1..] + "e" + exp;
    }

    /// <summary><c>x.toFixed(1)</c> for an integer-valued x.</summary>
    public static string ToFixed1(double d)
    {
        if (Math.Abs(d) >= 1e21) return ToString(d);
        return new BigInteger(d).ToString(CultureInfo.InvariantCulture) + ".0";
    }

    // The shortest round-trip decimal digits of d > 0 and n such that d = 0.DIGITS × 10^n.
    private static (string Digits, int N) Digits(double d)
    {
        // .NET's "R" gives the shortest digits that round-trip, as JavaScript's algorithm does.
        string shortest = d.ToString("R", CultureInfo.InvariantCulture);
        string mant = shortest, expPart = "0";
        int ei = shortest.IndexOfAny(['E', 'e']);
        if (ei >= 0) { mant = shortest[..ei]; expPart = shortest[(ei + 1)..]; }
        int exp = int.Parse(expPart, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        int dot = mant.IndexOf('.');
        string intPart = dot >= 0 ? mant[..dot] : mant, frac = dot >= 0 ? mant[(dot + 1)..] : "";
        string all = intPart + frac;
        int n = intPart.Length + exp;
        int lead = 0;
        while (lead < all.Length - 1 && all[lead] == '0') lead++;
        all = all[lead..];
        n -= lead;
        all = all.TrimEnd('0');
        if (all.Length == 0) all = "0";
        return (all, n);
    }

    /// <summary>JavaScript's <c>Number(string)</c>: trimmed, empty → 0, decimal or 0x/0o/0b, else NaN.</summary>
    public static double Parse(string s)
    {
        s = JsString.Trim(s);
        if (s.Length == 0) return 0;
        if (s is "Infinity" or "+Infinity") return double.PositiveInfinity;
        if (s == "-Infinity") return double.NegativeInfinity;
        if (s.Length > 2 && s[0] == '0' && s[1] is 'x' or 'X' or 'o' or 'O' or 'b' or 'B')
        {
            int radix = s[1] is 'x' or 'X' ? 16 : s[1] is 'o' or 'O' ? 8 : 2;
            double v = 0;
            foreach (char c in s[2..])
            {
                int dv = Uri.IsHexDigit(c) ? Convert.ToInt32(c.ToString(), 16) : 99;
                if (dv >= radix) return double.NaN;
                v = v * radix + dv;
            }
            return v;
        }
        foreach (char c in s) if (!(char.IsAsciiDigit(c) || c is '.' or 'e' or 'E' or '+' or '-')) return double.NaN;
        return double.TryParse(s, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent,
            CultureInfo.InvariantCulture, out double r) ? r : double.NaN;
    }

    /// <summary>JavaScript's <c>parseInt(s, 10)</c>.</summary>
    public static double ParseInt(string s)
    {
        s = JsString.TrimStart(s);
        int i = 0;
        bool neg = false;
        if (i < s.Length && s[i] is '+' or '-') { neg = s[i] == '-'; i++; }
        int start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (i == start) return double.NaN;
        double v = double.Parse(s[start..i], CultureInfo.InvariantCulture);
        return neg ? -v : v;
    }

    /// <summary>JavaScript's <c>parseFloat(s)</c>.</summary>
    public static double ParseFloat(string s)
    {
        s = JsString.TrimStart(s);
        int i = 0;
        if (i < s.Length && s[i] is '+' or '-') i++;
        if (string.CompareOrdinal(s, i, "Infinity", 0, 8) == 0) return s[0] == '-' ? double.NegativeInfinity : double.PositiveInfinity;
        int digitsStart = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (i < s.Length && s[i] == '.') { i++; while (i < s.Length && char.IsAsciiDigit(s[i])) i++; }
        if (i == digitsStart || (i == digitsStart + 1 && s[digitsStart] == '.')) return double.NaN;
        int mantEnd = i;
        if (i < s.Length && s[i] is 'e' or 'E')
        {
            int j = i + 1;
            if (j < s.Length && s[j] is '+' or '-') j++;
            int es = j;
            while (j < s.Length && char.IsAsciiDigit(s[j])) j++;
            if (j > es) mantEnd = j;
        }
        return double.Parse(s[..mantEnd], NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}

/// <summary>JavaScript's string operations where .NET's differ.</summary>
internal static class JsString
{
    public static string Trim(string s) => TrimEnd(TrimStart(s));
    public static string TrimStart(string s)
    {
        int i = 0;
        while (i < s.Length && JinjaLexer.IsWhitespace(s[i])) i++;
        return s[i..];
    }
    public static string TrimEnd(string s)
    {
        int e = s.Length;
        while (e > 0 && JinjaLexer.IsWhitespace(s[e - 1])) e--;
        return s[..e];
    }
    /// <summary><c>toUpperCase()</c>: .NET's invariant mapping plus the expansions of Unicode's SpecialCasing that JavaScript applies (ß → SS, ligatures).</summary>
    public static string Upper(string s)
    {
        string u = s.ToUpperInvariant();
        if (!u.Any(c => UpperExpansions.ContainsKey(c))) return u;
        var sb = new StringBuilder(u.Length + 4);
        foreach (char c in u) sb.Append(UpperExpansions.TryGetValue(c, out var x) ? x : c.ToString());
        return sb.ToString();
    }

    /// <summary><c>toLowerCase()</c>: .NET's invariant mapping, with İ → i̇ as JavaScript writes it.</summary>
    public static string Lower(string s) => s.Replace("\u0130", "i\u0307", StringComparison.Ordinal).ToLowerInvariant();

    private static readonly Dictionary<char, string> UpperExpansions = new()
    {
        ['\u00df'] = "SS", ['\ufb00'] = "FF", ['\ufb01'] = "FI", ['\ufb02'] = "FL", ['\ufb03'] = "FFI", ['\ufb04'] = "FFL",
        ['\ufb05'] = "ST", ['\ufb06'] = "ST", ['\u0149'] = "\u02bcN", ['\u01f0'] = "J\u030c", ['\u0587'] = "\u0535\u0552",
        ['\u1e96'] = "H\u0331", ['\u1e97'] = "T\u0308", ['\u1e98'] = "W\u030a", ['\u1e99'] = "Y\u030a", ['\u1e9a'] = "A\u02be",
    };

    /// <summary>The string's code points (JavaScript's <c>Array.from(string)</c>).</summary>
    public static List<string> CodePoints(string s)
    {
        var list = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { list.Add(s.Substring(i, 2)); i++; }
            else list.Add(s[i].ToString());
        }
        return list;
    }
}

/// <summary>Conversion of .NET values (strings, numbers, booleans, null, lists, dictionaries, JSON) to runtime values.</summary>
internal static class JConvert
{
    public static JValue From(object? input) => input switch
    {
        null => JNull.Instance,
        JValue v => v,
        string s => new JString(s),
        bool b => JBool.Of(b),
        int i => JNumber.Int(i),
        long l => JNumber.Int(l),
        double d => d % 1 == 0 && double.IsFinite(d) ? JNumber.Int(d) : JNumber.Float(d),
        float f => From((double)f),
        JsonElement e => FromJson(e),
        ChatMessage m => new JObject(new OrderedDictionary<string, JValue> { ["role"] = new JString(m.Role), ["content"] = new JString(m.Content) }),
        System.Collections.IDictionary dict => FromDictionary(dict),
        System.Collections.IEnumerable list => new JArray(list.Cast<object?>().Select(From).ToList()),
        _ => throw new ArgumentException($"Cannot pass a {input.GetType().Name} to a template."),
    };

    private static JObject FromDictionary(System.Collections.IDictionary dict)
    {
        var map = new OrderedDictionary<string, JValue>();
        foreach (System.Collections.DictionaryEntry kv in dict) map[kv.Key.ToString()!] = From(kv.Value);
        return new JObject(map);
    }

    private static JObject FromJsonObject(JsonElement e)
    {
        var map = new OrderedDictionary<string, JValue>();
        foreach (var p in e.EnumerateObject()) map[p.Name] = FromJson(p.Value);
        return new JObject(map);
    }

    public static JValue FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null => JNull.Instance,
        JsonValueKind.True => JBool.True,
        JsonValueKind.False => JBool.False,
        JsonValueKind.String => new JString(e.GetString()!),
        JsonValueKind.Number => From(e.GetDouble()),
        JsonValueKind.Array => new JArray(e.EnumerateArray().Select(FromJson).ToList()),
        JsonValueKind.Object => FromJsonObject(e),
        _ => JUndefined.Instance,
    };
}
