using System.Text;

namespace Raft.Model.Tokenization.Jinja;

/// <summary>A scope: its variables and its parent (every scope holds its own <c>namespace</c> builtin, as in <c>@huggingface/jinja</c>).</summary>
internal sealed class JinjaEnv
{
    public Dictionary<string, JValue> Vars { get; } = new(StringComparer.Ordinal);
    public JinjaEnv? Parent { get; }
    public bool CallBlockScope { get; set; }

    public JinjaEnv(JinjaEnv? parent = null)
    {
        Parent = parent;
        Vars["namespace"] = new JFunction((args, _) => JinjaInterpreter.Namespace(args));
    }

    public void Declare(string name, JValue value)
    {
        if (!Vars.TryAdd(name, value)) throw new JinjaSyntaxException($"Variable already declared: {name}");
    }

    public void Set(string name, JValue value) => Vars[name] = value;

    public JValue Lookup(string name)
    {
        for (var e = this; e is not null; e = e.Parent)
            if (e.Vars.TryGetValue(name, out var v)) return v;
        return JUndefined.Instance;
    }
}

internal sealed class BreakSignal : Exception;
internal sealed class ContinueSignal : Exception;

/// <summary>Evaluates a parsed template with <c>@huggingface/jinja</c>'s semantics (its runtime.ts, rule by rule).</summary>
internal sealed class JinjaInterpreter
{
    private static JValue Undef => JUndefined.Instance;
    private static JValue Null => JNull.Instance;
    private static JString S(string s) => new(s);
    private static JValue Err(string message) => throw new JinjaRenderException(message);

    public static JinjaEnv GlobalEnv(DateTime now)
    {
        var env = new JinjaEnv();
        env.Declare("false", JBool.False);
        env.Declare("true", JBool.True);
        env.Declare("none", Null);
        env.Declare("raise_exception", new JFunction((args, _) =>
            throw new JinjaRenderException(args.Count > 0 ? MessageOf(args[0]) : "undefined")));
        env.Declare("range", new JFunction((args, _) => Range(args)));
        env.Declare("strftime_now", new JFunction((args, _) => S(Strftime(now, args.Count > 0 ? args[0].RawStr() : "undefined"))));
        env.Declare("True", JBool.True);
        env.Declare("False", JBool.False);
        env.Declare("None", Null);
        return env;
    }

    // raise_exception(x) throws new Error(x.value): JavaScript's Error(message) turns the message into a string.
    private static string MessageOf(JValue v) => v switch
    {
        JUndefined => "",
        JNull => "null",
        _ => v.RawStr(),
    };

    private static JValue Range(List<JValue> args)
    {
        double N(int i) => args[i] is JNumber n ? n.Value : args[i] is JBool b ? (b.Value ? 1 : 0) : double.NaN;
        double start = N(0), stop, step = args.Count > 2 ? N(2) : 1;
        if (args.Count < 2) { stop = start; start = 0; } else stop = N(1);
        if (step == 0) throw new JinjaRenderException("range() step must not be zero");
        var r = new List<JValue>();
        if (step > 0) for (double i = start; i < stop; i += step) r.Add(JNumber.Int(i));
        else for (double i = start; i > stop; i += step) r.Add(JNumber.Int(i));
        return new JArray(r);
    }

    private static readonly string[] MonthsLong = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    private static string Strftime(DateTime d, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] == '%' && i + 1 < format.Length && "YmdbBHM%".Contains(format[i + 1]))
            {
                char t = format[++i];
                sb.Append(t switch
                {
                    'Y' => d.Year.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    'm' => d.Month.ToString("00"),
                    'd' => d.Day.ToString("00"),
                    'b' => MonthsLong[d.Month - 1][..3],
                    'B' => MonthsLong[d.Month - 1],
                    'H' => d.Hour.ToString("00"),
                    'M' => d.Minute.ToString("00"),
                    _ => "%",
                });
            }
            else sb.Append(format[i]);
        }
        return sb.ToString();
    }

    public static JNamespace Namespace(List<JValue> args)
    {
        var positional = args.ToList();
        JObject? kwargs = null;
        if (positional.Count > 0 && positional[^1] is JObject { Kind: ObjectKind.Kwargs } k) { kwargs = k; positional.RemoveAt(positional.Count - 1); }
        if (positional.Count > 1) throw new JinjaRenderException($"namespace expected at most 1 argument, got {positional.Count}");
        var entries = new OrderedDictionary<string, JValue>();
        if (positional.Count == 1)
        {
            var source = positional[0];
            if (source is JObject o) foreach (var (key, v) in o.Map) entries[key] = v;
            else if (source is JArray a)
            {
                foreach (var pair in a.Items)
                {
                    List<JValue>? values = pair is JArray pa ? pa.Items : pair is JString ps ? JsString.CodePoints(ps.Value).Select(c => (JValue)S(c)).ToList() : null;
                    if (values is null || values.Count != 2) throw new JinjaRenderException("namespace expected an object or an iterable of [key, value] pairs");
                    if (values[0] is not JString key) throw new JinjaRenderException("namespace keys must be strings");
                    entries[key.Value] = values[1];
                }
            }
            else throw new JinjaRenderException($"'{source.TypeName}' object is not iterable");
        }
        if (kwargs is not null) foreach (var (key, v) in kwargs.Map) entries[key] = v;
        return new JNamespace(entries);
    }

    // ------------------------------------------------------------------ rendering

    private const int MaxMacroDepth = 200;
    private int _depth;

    /// <summary>
    /// Loop iterations and macro calls one render may run: nested loops (2²⁶³ iterations for 263 nested loops over two
    /// messages) or a macro calling itself twice render for ever, not with an error. A chat template over a long
    /// conversation runs thousands.
    /// </summary>
    public const long MaxSteps = 1 << 20;
    private long _steps;

    private void Step()
    {
        if (++_steps > MaxSteps)
            throw new JinjaRenderException($"the template ran more than {MaxSteps} loop iterations and macro calls (nested loops or recursion without end?)");
    }

    public string Run(ProgramNode program, JinjaEnv env) => RenderBlock(program.Body, env);

    private string RenderBlock(List<Node> statements, JinjaEnv env)
    {
        // a recursive macro, or a chain of 10⁵ operators that parses without recursion, must not overflow the stack:
        // InsufficientExecutionStackException, which JinjaTemplate reports as a render error
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var sb = new StringBuilder();
        foreach (var st in statements)
        {
            switch (st)
            {
                case StringLiteral s: sb.Append(s.Value); break;
                case IfNode i: sb.Append(RenderIf(i, env)); break;
                case ForNode f: sb.Append(RenderFor(f, env)); break;
                case SetNode s: ExecuteSet(s, env); break;
                case CommentNode: break;
                default:
                    var v = Evaluate(st, env);
                    if (v is not (JNull or JUndefined)) sb.Append(v.Str());
                    break;
            }
        }
        return sb.ToString();
    }

    private string RenderIf(IfNode node, JinjaEnv env) => RenderBlock(Evaluate(node.Test, env).Truthy ? node.Body : node.Alternate, env);

    public JValue Evaluate(Node? node, JinjaEnv env)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (node)
        {
            case null: return Undef;
            case IdentifierNode id: return env.Lookup(id.Value);
            case IntegerLiteral i: return JNumber.Int(i.Value);
            case BinaryNode b: return EvaluateBinary(b, env);
            case StringLiteral s: return S(s.Value);
            case MemberNode m: return EvaluateMember(m, env);
            case CallNode c: return EvaluateCall(c, env);
            case FilterNode f: return ApplyFilter(Evaluate(f.Operand, env), f.Filter, env);
            case TestNode t: return EvaluateTest(t, env);
            case TernaryNode t: return Evaluate(t.Condition, env).Truthy ? Evaluate(t.TrueExpr, env) : Evaluate(t.FalseExpr, env);
            case UnaryNode u: return EvaluateUnary(u, env);
            case FloatLiteral f: return JNumber.Float(f.Value);
            case ArrayLiteral a: return new JArray(a.Value.Select(x => Evaluate(x, env)).ToList());
            case TupleLiteral t: return new JArray(t.Value.Select(x => Evaluate(x, env)).ToList(), tuple: true);
            case ObjectLiteral o:
            {
                var map = new OrderedDictionary<string, JValue>();
                foreach (var (k, v) in o.Value)
                {
                    var key = Evaluate(k, env);
                    if (key is not JString ks) throw new JinjaRenderException($"Object keys must be strings: got {key.TypeName}");
                    map[ks.Value] = Evaluate(v, env);
                }
                return new JObject(map);
            }
            case SelectNode s: return Evaluate(s.Test, env).Truthy ? Evaluate(s.Lhs, env) : Undef;
            case IfNode i: return S(RenderIf(i, env));
            case SetNode s: ExecuteSet(s, env); return Null;
            case ForNode f: return S(RenderFor(f, env));
            case MacroNode m: return EvaluateMacro(m, env);
            case CallStatementNode c: return EvaluateCallStatement(c, env);
            case FilterStatementNode f: return ApplyFilter(S(RenderBlock(f.Body, env)), f.Filter, env);
            case CommentNode: return Null;
            case BreakNode: throw new BreakSignal();
            case ContinueNode: throw new ContinueSignal();
            case ProgramNode p: return S(RenderBlock(p.Body, env));
            default: throw new JinjaSyntaxException($"Unknown node type: {node.GetType().Name}");
        }
    }

    // JavaScript's loose equality (==) of the runtime values' underlying values.
    private static bool LooseEquals(JValue a, JValue b)
    {
        if (a is JNull or JUndefined) return b is JNull or JUndefined;
        if (b is JNull or JUndefined) return false;
        if (a is JString sa && b is JString sb) return sa.Value == sb.Value;
        if (IsPrimitive(a) && IsPrimitive(b)) return Num(a) == Num(b);
        if (IsPrimitive(a) || IsPrimitive(b)) return false;
        return ReferenceEquals(Underlying(a), Underlying(b));
        static bool IsPrimitive(JValue v) => v is JString or JNumber or JBool;
        static double Num(JValue v) => v switch { JNumber n => n.Value, JBool b => b.Value ? 1 : 0, JString s => JsNumber.Parse(s.Value), _ => double.NaN };
        static object Underlying(JValue v) => v switch { JObject o => o.Map, JNamespace n => n.Map, JArray a => a.Items, JFunction f => f.Fn, _ => v };
    }

    // JavaScript's strict equality (===) of the underlying values.
    private static bool StrictEquals(JValue a, JValue b) => (a, b) switch
    {
        (JUndefined, JUndefined) or (JNull, JNull) => true,
        (JString x, JString y) => x.Value == y.Value,
        (JNumber x, JNumber y) => x.Value == y.Value,
        (JBool x, JBool y) => x.Value == y.Value,
        (JObject x, JObject y) => ReferenceEquals(x.Map, y.Map),
        (JNamespace x, JNamespace y) => ReferenceEquals(x.Map, y.Map),
        (JArray x, JArray y) => ReferenceEquals(x.Items, y.Items),
        (JFunction x, JFunction y) => ReferenceEquals(x.Fn, y.Fn),
        _ => false,
    };

    private static bool IsNumericLike(JValue v) => v is JNumber or JBool;
    private static double NumericValue(JValue v) => v is JBool b ? (b.Value ? 1 : 0) : ((JNumber)v).Value;

    private JValue EvaluateBinary(BinaryNode node, JinjaEnv env)
    {
        string op = node.Operator;
        var left = Evaluate(node.Left, env);
        if (op == "and") return left.Truthy ? Evaluate(node.Right, env) : left;
        if (op == "or") return left.Truthy ? left : Evaluate(node.Right, env);
        var right = Evaluate(node.Right, env);
        if (op == "==") return JBool.Of(LooseEquals(left, right));
        if (op == "!=") return JBool.Of(!LooseEquals(left, right));

        if (left is JNumber ln && right is JNumber rn && op is not ("~" or "**"))
        {
            double a = ln.Value, b = rn.Value;
            bool isFloat = ln.IsFloat || rn.IsFloat;
            switch (op)
            {
                case "+": return new JNumber(a + b, isFloat);
                case "-": return new JNumber(a - b, isFloat);
                case "*": return new JNumber(a * b, isFloat);
                case "/": return JNumber.Float(a / b);
                case "//": return new JNumber(Math.Floor(a / b), isFloat);
                case "%": return new JNumber(a % b, isFloat);
                case "<": return JBool.Of(a < b);
                case ">": return JBool.Of(a > b);
                case ">=": return JBool.Of(a >= b);
                case "<=": return JBool.Of(a <= b);
            }
        }
        else if (left is JUndefined || right is JUndefined)
        {
            if (right is JUndefined && op is "in" or "not in") return JBool.Of(op == "not in");
            if (op == "~" && !(left is JNull || right is JNull))
                return S((left is JUndefined ? "" : left.RawStr()) + (right is JUndefined ? "" : right.RawStr()));
            throw new JinjaRenderException($"Cannot perform operation {op} on undefined values");
        }
        else if (left is JNull || right is JNull)
            throw new JinjaRenderException("Cannot perform operation on null values");
        else if (op == "~")
            return S(left.RawStr() + right.RawStr());
        else if (op == "**" && IsNumericLike(left) && IsNumericLike(right))
        {
            double a = NumericValue(left), b = NumericValue(right);
            if (a == 0 && b < 0) throw new JinjaRenderException("0.0 cannot be raised to a negative power");
            double result = Math.Pow(a, b);
            if (!double.IsFinite(result)) throw new JinjaRenderException("Exponentiation result is not a finite real number");
            bool isFloat = left is JNumber { IsFloat: true } || right is JNumber { IsFloat: true } || b < 0;
            return new JNumber(result, isFloat);
        }
        else if (left is JArray la && right is JArray ra)
        {
            if (op == "+") return new JArray(la.Items.Concat(ra.Items).ToList());
        }
        else if (right is JArray rarr)
        {
            bool member = rarr.Items.Any(x => StrictEquals(x, left));
            if (op == "in") return JBool.Of(member);
            if (op == "not in") return JBool.Of(!member);
        }

        if ((left is JString || right is JString) && op == "+") return S(left.RawStr() + right.RawStr());
        if (left is JString ls && right is JString rs)
        {
            if (op == "in") return JBool.Of(rs.Value.Contains(ls.Value, StringComparison.Ordinal));
            if (op == "not in") return JBool.Of(!rs.Value.Contains(ls.Value, StringComparison.Ordinal));
        }
        if (left is JString lk && right is JObject ro)
        {
            if (op == "in") return JBool.Of(ro.Map.ContainsKey(lk.Value));
            if (op == "not in") return JBool.Of(!ro.Map.ContainsKey(lk.Value));
        }
        throw new JinjaRenderException($"Unknown operator \"{op}\" between {left.TypeName} and {right.TypeName}");
    }

    private List<JValue> EvaluateCallArguments(List<Node> args, JinjaEnv env)
    {
        if (args.Any(a => a is KeywordArgumentNode or SpreadNode or KeywordSpreadNode))
        {
            var (pos, kw) = EvaluateArguments(args, env);
            if (kw.Count > 0) pos.Add(new JObject(kw, ObjectKind.Kwargs));
            return pos;
        }
        return args.Select(a => Evaluate(a, env)).ToList();
    }

    private (List<JValue> Positional, OrderedDictionary<string, JValue> Keyword) EvaluateArguments(List<Node> args, JinjaEnv env)
    {
        var pos = new List<JValue>();
        var kw = new OrderedDictionary<string, JValue>();
        void AddKw(string key, JValue value)
        {
            if (!kw.TryAdd(key, value)) throw new JinjaRenderException($"Got multiple values for keyword argument '{key}'");
        }
        foreach (var a in args)
        {
            if (a is SpreadNode sp)
            {
                var v = Evaluate(sp.Argument, env);
                if (v is not JArray arr) throw new JinjaRenderException($"Cannot unpack non-iterable type: {v.TypeName}");
                pos.AddRange(arr.Items);
            }
            else if (a is not (KeywordArgumentNode or KeywordSpreadNode)) pos.Add(Evaluate(a, env));
        }
        foreach (var a in args)
        {
            if (a is KeywordArgumentNode k) AddKw(k.Key.Value, Evaluate(k.Value, env));
            else if (a is KeywordSpreadNode ks)
            {
                var v = Evaluate(ks.Argument, env);
                if (v is not JObject o) throw new JinjaRenderException($"Argument after ** must be a mapping, not {v.TypeName}");
                foreach (var (key, value) in o.Map) AddKw(key, value);
            }
        }
        return (pos, kw);
    }

    private JValue EvaluateCall(CallNode expr, JinjaEnv env)
    {
        var args = EvaluateCallArguments(expr.Args, env);
        var fn = Evaluate(expr.Callee, env);
        if (fn is not JFunction f) throw new JinjaRenderException($"Cannot call something that is not a function: got {fn.TypeName}");
        return f.Fn(args, env);
    }

    private JBool EvaluateTest(TestNode node, JinjaEnv env)
    {
        var v = Evaluate(node.Operand, env);
        bool r = node.Test.Value switch
        {
            "boolean" => v is JBool,
            "callable" => v is JFunction,
            "odd" => v is JNumber { IsFloat: false } n ? n.Value % 2 != 0 : throw new JinjaRenderException($"cannot odd on {v.TypeName}"),
            "even" => v is JNumber { IsFloat: false } n2 ? n2.Value % 2 == 0 : throw new JinjaRenderException($"cannot even on {v.TypeName}"),
            "false" => v is JBool { Value: false },
            "true" => v is JBool { Value: true },
            "none" => v is JNull,
            "string" => v is JString,
            "number" => v is JNumber,
            "integer" => v is JNumber { IsFloat: false },
            "iterable" => v is JArray { IsTuple: false } or JString,
            "mapping" => v is JObject,
            "sequence" => v is JArray or JObject or JString,
            "lower" => v is JString ls ? ls.Value == JsString.Lower(ls.Value) : throw new JinjaRenderException($"cannot lower on {v.TypeName}"),
            "upper" => v is JString us ? us.Value == JsString.Upper(us.Value) : throw new JinjaRenderException($"cannot upper on {v.TypeName}"),
            "defined" => v is not JUndefined,
            "undefined" => v is JUndefined,
            "equalto" or "eq" => throw new JinjaRenderException($"Cannot read properties of undefined (reading 'value')"),
            _ => throw new JinjaRenderException($"Unknown test: {node.Test.Value}"),
        };
        return JBool.Of(node.Negate ? !r : r);
    }

    private JValue EvaluateUnary(UnaryNode node, JinjaEnv env)
    {
        var a = Evaluate(node.Argument, env);
        switch (node.Operator)
        {
            case "not": return JBool.Of(!a.Truthy);
            case "+":
            case "-":
            {
                int sign = node.Operator == "-" ? -1 : 1;
                if (a is JNumber or JBool)
                {
                    double value = a is JBool b ? (b.Value ? 1 : 0) : ((JNumber)a).Value;
                    return new JNumber(sign * value, a is JNumber { IsFloat: true });
                }
                throw new JinjaSyntaxException($"Unknown operator \"{node.Operator}\" for {a.TypeName}");
            }
            default: throw new JinjaSyntaxException($"Unknown operator: {node.Operator}");
        }
    }

    // Python-style slicing (utils.ts slice()).
    private static List<T> Slice<T>(List<T> array, double? start, double? stop, double step)
    {
        int dir = Math.Sign(step);
        int n = array.Count;
        double s, e;
        if (dir >= 0)
        {
            double a = start ?? 0, b = stop ?? n;
            s = a < 0 ? Math.Max(n + a, 0) : Math.Min(a, n);
            e = b < 0 ? Math.Max(n + b, 0) : Math.Min(b, n);
        }
        else
        {
            double a = start ?? n - 1, b = stop ?? -1;
            s = a < 0 ? Math.Max(n + a, -1) : Math.Min(a, n - 1);
            e = b < -1 ? Math.Max(n + b, -1) : Math.Min(b, n - 1);
        }
        var r = new List<T>();
        if (step == 0) return r;
        for (double i = s; dir * i < dir * e; i += step) r.Add(array[(int)i]);
        return r;
    }

    private JValue EvaluateSlice(JValue obj, SliceNode expr, JinjaEnv env)
    {
        if (obj is not (JArray or JString)) throw new JinjaRenderException("Slice object must be an array or string");
        var start = Evaluate(expr.Start, env);
        var stop = Evaluate(expr.Stop, env);
        var step = Evaluate(expr.Step, env);
        double? Opt(JValue v, string what) => v switch
        {
            JNumber { IsFloat: false } n => n.Value,
            JUndefined => null,
            _ => throw new JinjaRenderException($"Slice {what} must be numeric or undefined"),
        };
        double? a = Opt(start, "start"), b = Opt(stop, "stop"), c = Opt(step, "step");
        if (obj is JArray arr) return new JArray(Slice(arr.Items, a, b, c ?? 1));
        return S(string.Concat(Slice(JsString.CodePoints(((JString)obj).Value), a, b, c ?? 1)));
    }

    private JValue EvaluateMember(MemberNode expr, JinjaEnv env)
    {
        var obj = Evaluate(expr.Object, env);
        JValue property;
        if (expr.Computed)
        {
            if (expr.Property is SliceNode sl) return EvaluateSlice(obj, sl, env);
            property = Evaluate(expr.Property, env);
        }
        else if (expr.Property is IntegerLiteral il) property = JNumber.Int(il.Value);
        else property = S(((IdentifierNode)expr.Property).Value);

        JValue? value;
        if (obj is JObject or JNamespace)
        {
            if (property is not JString ps) throw new JinjaRenderException($"Cannot access property with non-string: got {property.TypeName}");
            var map = obj is JObject o ? o.Map : ((JNamespace)obj).Map;
            value = map.TryGetValue(ps.Value, out var got) ? got : obj is JObject oo ? ObjectBuiltin(oo, ps.Value) : null;
        }
        else if (obj is JArray or JString)
        {
            if (property is JNumber pn)
            {
                if (obj is JString str)
                {
                    int idx = JsAt(str.Value.Length, pn.Value);
                    value = idx < 0 ? null : S(str.Value[idx].ToString());
                }
                else
                {
                    var items = ((JArray)obj).Items;
                    int idx = JsAt(items.Count, pn.Value);
                    value = idx < 0 ? null : items[idx];
                }
            }
            else if (property is JString ps)
                value = obj is JString s2 ? StringBuiltin(s2.Value, ps.Value) : ps.Value == "length" ? JNumber.Int(((JArray)obj).Items.Count) : null;
            else throw new JinjaRenderException($"Cannot access property with non-string/non-number: got {property.TypeName}");
        }
        else
        {
            if (property is not JString) throw new JinjaRenderException($"Cannot access property with non-string: got {property.TypeName}");
            value = null;
        }
        return value ?? Undef;
    }

    // Array.prototype.at: a truncated index, negative from the end; -1 when out of range.
    private static int JsAt(int length, double index)
    {
        double i = double.IsNaN(index) ? 0 : Math.Truncate(index);
        if (i < 0) i += length;
        return i < 0 || i >= length ? -1 : (int)i;
    }

    // ------------------------------------------------------------------ builtins of strings and objects

    private static JValue? StringBuiltin(string value, string name) => name switch
    {
        "upper" => new JFunction((_, _) => S(JsString.Upper(value))),
        "lower" => new JFunction((_, _) => S(JsString.Lower(value))),
        "strip" => new JFunction((_, _) => S(JsString.Trim(value))),
        "title" => new JFunction((_, _) => S(TitleCase(value))),
        "capitalize" => new JFunction((_, _) => S(value.Length == 0 ? "" : JsString.Upper(value[..1]) + value[1..])),
        "length" => JNumber.Int(value.Length),
        "rstrip" => new JFunction((_, _) => S(JsString.TrimEnd(value))),
        "lstrip" => new JFunction((_, _) => S(JsString.TrimStart(value))),
        "startswith" => new JFunction((args, _) => JBool.Of(Affix(value, args, "startswith", (s, p) => s.StartsWith(p, StringComparison.Ordinal)))),
        "endswith" => new JFunction((args, _) => JBool.Of(Affix(value, args, "endswith", (s, p) => s.EndsWith(p, StringComparison.Ordinal)))),
        "split" => new JFunction((args, _) => Split(value, args)),
        "replace" => new JFunction((args, _) => ReplaceBuiltin(value, args)),
        _ => null,
    };

    private static bool Affix(string value, List<JValue> args, string name, Func<string, string, bool> test)
    {
        if (args.Count == 0) throw new JinjaRenderException($"{name}() requires at least one argument");
        if (args[0] is JString p) return test(value, p.Value);
        if (args[0] is JArray arr)
        {
            foreach (var item in arr.Items)
            {
                if (item is not JString s) throw new JinjaRenderException($"{name}() tuple elements must be strings");
                if (test(value, s.Value)) return true;
            }
            return false;
        }
        throw new JinjaRenderException($"{name}() argument must be a string or tuple of strings");
    }

    private static string TitleCase(string value)
    {
        var sb = new StringBuilder(value);
        static bool W(char c) => c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9' or '_';
        for (int i = 0; i < sb.Length; i++)
            if (W(sb[i]) && (i == 0 || !W(sb[i - 1]))) sb[i] = char.ToUpperInvariant(sb[i]);
        return sb.ToString();
    }

    private static JValue Split(string value, List<JValue> args)
    {
        var sep = args.Count > 0 ? args[0] : Null;
        if (sep is not (JString or JNull)) throw new JinjaRenderException("sep argument must be a string or null");
        var maxsplitV = args.Count > 1 ? args[1] : JNumber.Int(-1);
        if (maxsplitV is not JNumber { IsFloat: false } ms) throw new JinjaRenderException("maxsplit argument must be a number");
        double maxsplit = ms.Value;
        var result = new List<string>();
        if (sep is JNull)
        {
            string text = JsString.TrimStart(value);
            int i = 0;
            while (i < text.Length)
            {
                while (i < text.Length && JinjaLexer.IsWhitespace(text[i])) i++;
                if (i >= text.Length) break;
                int start = i;
                while (i < text.Length && !JinjaLexer.IsWhitespace(text[i])) i++;
                if (maxsplit >= 0 && result.Count >= maxsplit)
                {
                    result.Add(text[start..]);
                    break;
                }
                result.Add(text[start..i]);
            }
        }
        else
        {
            string s = ((JString)sep).Value;
            if (s.Length == 0) throw new JinjaRenderException("empty separator");
            result = value.Split(s).ToList();
            if (maxsplit >= 0 && result.Count > maxsplit)
            {
                int m = (int)maxsplit;
                string rest = string.Join(s, result.Skip(m));
                result = result.Take(m).Append(rest).ToList();
            }
        }
        return new JArray(result.Select(x => (JValue)S(x)).ToList());
    }

    private static JValue ReplaceBuiltin(string value, List<JValue> args)
    {
        if (args.Count < 2) throw new JinjaRenderException("replace() requires at least two arguments");
        if (args[0] is not JString oldV || args[1] is not JString newV) throw new JinjaRenderException("replace() arguments must be strings");
        JValue count = args.Count > 2
            ? args[2] is JObject { Kind: ObjectKind.Kwargs } kw ? kw.Map.GetValueOrDefault("count") ?? Null : args[2]
            : Null;
        if (count is not (JNumber { IsFloat: false } or JNull)) throw new JinjaRenderException("replace() count argument must be a number or null");
        double? c = count is JNumber n ? n.Value : null;
        return S(Replace(value, oldV.Value, newV.Value, c));
    }

    private static string Replace(string str, string oldValue, string newValue, double? count)
    {
        if (count == 0) return str;
        double remaining = count is null || count < 0 ? double.PositiveInfinity : count.Value;
        var sb = new StringBuilder();
        if (oldValue.Length == 0)
        {
            var cps = JsString.CodePoints(str);
            for (int i = 0; i <= cps.Count; i++)
            {
                if (remaining > 0) { sb.Append(newValue); remaining--; }
                if (i < cps.Count) sb.Append(cps[i]);
            }
            return sb.ToString();
        }
        int pos = 0;
        while (true)
        {
            int idx = str.IndexOf(oldValue, pos, StringComparison.Ordinal);
            if (idx < 0 || remaining <= 0) break;
            sb.Append(str, pos, idx - pos).Append(newValue);
            remaining--;
            pos = idx + oldValue.Length;
        }
        sb.Append(str, pos, str.Length - pos);
        return sb.ToString();
    }

    private static JArray Items(JObject o) => new(o.Map.Select(kv => (JValue)new JArray([S(kv.Key), kv.Value])).ToList());

    private JValue? ObjectBuiltin(JObject o, string name) => name switch
    {
        "get" => new JFunction((args, _) =>
        {
            var key = args.Count > 0 ? args[0] : Undef;
            if (key is not JString ks) throw new JinjaRenderException($"Object key must be a string: got {key.TypeName}");
            return o.Map.TryGetValue(ks.Value, out var v) ? v : args.Count > 1 ? args[1] : Null;
        }),
        "items" => new JFunction((_, _) => Items(o)),
        "keys" => new JFunction((_, _) => new JArray(o.Map.Keys.Select(k => (JValue)S(k)).ToList())),
        "values" => new JFunction((_, _) => new JArray(o.Map.Values.ToList())),
        "dictsort" => new JFunction((args, _) => DictSort(o, args)),
        _ => null,
    };

    private static JValue DictSort(JObject o, List<JValue> args)
    {
        var kwargs = new OrderedDictionary<string, JValue>();
        var positional = new List<JValue>();
        foreach (var a in args)
        {
            if (a is JObject { Kind: ObjectKind.Kwargs } k) kwargs = k.Map;
            else positional.Add(a);
        }
        var caseSensitive = positional.ElementAtOrDefault(0) ?? kwargs.GetValueOrDefault("case_sensitive") ?? JBool.False;
        if (caseSensitive is not JBool cs) throw new JinjaRenderException("case_sensitive must be a boolean");
        var by = positional.ElementAtOrDefault(1) ?? kwargs.GetValueOrDefault("by") ?? S("key");
        if (by is not JString bys) throw new JinjaRenderException("by must be a string");
        if (bys.Value is not ("key" or "value")) throw new JinjaRenderException("by must be either 'key' or 'value'");
        var reverse = positional.ElementAtOrDefault(2) ?? kwargs.GetValueOrDefault("reverse") ?? JBool.False;
        if (reverse is not JBool rev) throw new JinjaRenderException("reverse must be a boolean");
        int index = bys.Value == "key" ? 0 : 1;
        var items = Items(o).Items.Cast<JArray>().ToList();
        var sorted = StableSort(items, (a, b) =>
        {
            int r = Compare(a.Items[index], b.Items[index], cs.Value);
            return rev.Value ? -r : r;
        });
        return new JArray(sorted.Cast<JValue>().ToList());
    }

    private static List<T> StableSort<T>(List<T> items, Comparison<T> cmp) =>
        items.Select((x, i) => (x, i)).OrderBy(p => p, Comparer<(T x, int i)>.Create((a, b) => cmp(a.x, b.x) is var r && r != 0 ? r : a.i.CompareTo(b.i)))
            .Select(p => p.x).ToList();

    private static int Compare(JValue a, JValue b, bool caseSensitive)
    {
        if (a is JNull && b is JNull) return 0;
        if (a is JNull || b is JNull) throw new JinjaRenderException($"Cannot compare {a.TypeName} with {b.TypeName}");
        if (a is JUndefined && b is JUndefined) return 0;
        if (a is JUndefined || b is JUndefined) throw new JinjaRenderException($"Cannot compare {a.TypeName} with {b.TypeName}");
        if (IsNumericLike(a) && IsNumericLike(b))
        {
            double x = NumericValue(a), y = NumericValue(b);
            return x < y ? -1 : x > y ? 1 : 0;
        }
        if (a.TypeName != b.TypeName) throw new JinjaRenderException($"Cannot compare different types: {a.TypeName} and {b.TypeName}");
        if (a is JString sa && b is JString sb)
        {
            string x = caseSensitive ? sa.Value : JsString.Lower(sa.Value), y = caseSensitive ? sb.Value : JsString.Lower(sb.Value);
            int c = string.CompareOrdinal(x, y);
            return c < 0 ? -1 : c > 0 ? 1 : 0;
        }
        throw new JinjaRenderException($"Cannot compare type: {a.TypeName}");
    }

    private static JValue AttributeValue(JValue item, string path)
    {
        JValue value = item;
        foreach (var part in path.Split('.'))
        {
            if (value is JObject o) value = o.Map.GetValueOrDefault(part) ?? Undef;
            else if (value is JNamespace ns) value = ns.Map.GetValueOrDefault(part) ?? Undef;
            else if (value is JArray a)
            {
                double idx = JsNumber.ParseInt(part);
                if (!double.IsNaN(idx) && idx >= 0 && idx < a.Items.Count) value = a.Items[(int)idx];
                else return Undef;
            }
            else return Undef;
        }
        return value;
    }

    // ------------------------------------------------------------------ filters

    private JValue ApplyFilter(JValue operand, Node filterNode, JinjaEnv env)
    {
        if (filterNode is IdentifierNode fid)
        {
            string f = fid.Value;
            if (f == "safe") return operand;
            if (f == "tojson") return S(Json.Write(operand, new JsonOptions(), 0));
            switch (operand)
            {
                case JArray arr:
                    switch (f)
                    {
                        case "list": return operand;
                        // An empty list's first/last is JavaScript's undefined, which the renderer then fails to read.
                        case "first": return arr.Items.Count > 0 ? arr.Items[0] : throw new JinjaRenderException("Cannot read properties of undefined (reading 'type')");
                        case "last": return arr.Items.Count > 0 ? arr.Items[^1] : throw new JinjaRenderException("Cannot read properties of undefined (reading 'type')");
                        case "length": return JNumber.Int(arr.Items.Count);
                        case "reverse": return new JArray(Enumerable.Reverse(arr.Items).ToList());
                        case "sort": return new JArray(StableSort(arr.Items.ToList(), (a, b) => Compare(a, b, false)));
                        case "join": return S(string.Concat(arr.Items.Select(JoinPart)));
                        case "string": return S(Json.Write(operand, new JsonOptions(), 0, convertUndefinedToNull: false));
                        case "unique":
                        {
                            var output = new List<JValue>();
                            foreach (var item in arr.Items)
                                if (!output.Any(o => SameValueZero(o, item))) output.Add(item);
                            return new JArray(output);
                        }
                        default: throw new JinjaRenderException($"Unknown ArrayValue filter: {f}");
                    }
                case JString str:
                    switch (f)
                    {
                        case "length": return JNumber.Int(str.Value.Length);
                        case "upper": return S(JsString.Upper(str.Value));
                        case "lower": return S(JsString.Lower(str.Value));
                        case "title": return S(TitleCase(str.Value));
                        case "capitalize": return S(str.Value.Length == 0 ? "" : JsString.Upper(str.Value[..1]) + str.Value[1..]);
                        case "trim": return S(JsString.Trim(str.Value));
                        case "indent":
                            return S(string.Join("\n", str.Value.Split('\n').Select((x, i) => i == 0 || x.Length == 0 ? x : "    " + x)));
                        case "join":
                        case "string": return operand;
                        case "int": { double v = JsNumber.ParseInt(str.Value); return JNumber.Int(double.IsNaN(v) ? 0 : v); }
                        case "float": { double v = JsNumber.ParseFloat(str.Value); return JNumber.Float(double.IsNaN(v) ? 0 : v); }
                        default: throw new JinjaRenderException($"Unknown StringValue filter: {f}");
                    }
                case JNumber num:
                    switch (f)
                    {
                        case "abs": return new JNumber(Math.Abs(num.Value), num.IsFloat);
                        case "int": return JNumber.Int(Math.Truncate(num.Value) + 0);
                        case "float": return JNumber.Float(num.Value);
                        case "string": return S(num.Str());
                        default: throw new JinjaRenderException($"Unknown NumericValue filter: {f}");
                    }
                case JObject obj:
                    switch (f)
                    {
                        case "items": return Items(obj);
                        case "length": return JNumber.Int(obj.Map.Count);
                        default:
                        {
                            var builtin = ObjectBuiltin(obj, f);
                            if (builtin is JFunction bf) return bf.Fn([], env);
                            if (builtin is not null) return builtin;
                            throw new JinjaRenderException($"Unknown ObjectValue filter: {f}");
                        }
                    }
                case JBool b:
                    switch (f)
                    {
                        case "bool": return b;
                        case "int": return JNumber.Int(b.Value ? 1 : 0);
                        case "float": return JNumber.Float(b.Value ? 1 : 0);
                        case "string": return S(b.Value ? "true" : "false");
                        default: throw new JinjaRenderException($"Unknown BooleanValue filter: {f}");
                    }
            }
            throw new JinjaRenderException($"Cannot apply filter \"{f}\" to type: {operand.TypeName}");
        }
        if (filterNode is CallNode call)
        {
            if (call.Callee is not IdentifierNode cid) throw new JinjaRenderException($"Unknown filter: {call.Callee.GetType().Name}");
            string name = cid.Value;
            if (name == "tojson")
            {
                var (_, kw) = EvaluateArguments(call.Args, env);
                var indent = kw.GetValueOrDefault("indent") ?? Null;
                if (indent is not (JNumber { IsFloat: false } or JNull)) throw new JinjaRenderException("If set, indent must be a number");
                var ensureAscii = kw.GetValueOrDefault("ensure_ascii") ?? JBool.False;
                if (ensureAscii is not JBool ea) throw new JinjaRenderException("If set, ensure_ascii must be a boolean");
                var sortKeys = kw.GetValueOrDefault("sort_keys") ?? JBool.False;
                if (sortKeys is not JBool sk) throw new JinjaRenderException("If set, sort_keys must be a boolean");
                var sepArg = kw.GetValueOrDefault("separators") ?? Null;
                (string, string)? seps = null;
                if (sepArg is JArray sa)
                {
                    if (sa.Items.Count != 2 || sa.Items[0] is not JString s0 || sa.Items[1] is not JString s1)
                        throw new JinjaRenderException("separators must be a tuple of two strings");
                    seps = (s0.Value, s1.Value);
                }
                else if (sepArg is not JNull) throw new JinjaRenderException("If set, separators must be a tuple of two strings");
                return S(Json.Write(operand, new JsonOptions(indent is JNumber n ? (int)n.Value : null, ea.Value, seps, sk.Value), 0));
            }
            if (name == "join")
            {
                List<string> parts = operand switch
                {
                    JString s => JsString.CodePoints(s.Value),
                    JArray a => a.Items.Select(JoinPart).ToList(),
                    _ => throw new JinjaRenderException($"Cannot apply filter \"{name}\" to type: {operand.TypeName}"),
                };
                var (args, kw) = EvaluateArguments(call.Args, env);
                var sep = args.ElementAtOrDefault(0) ?? kw.GetValueOrDefault("separator") ?? S("");
                if (sep is not JString ss) throw new JinjaRenderException("separator must be a string");
                return S(string.Join(ss.Value, parts));
            }
            if (name is "int" or "float")
            {
                var (args, kw) = EvaluateArguments(call.Args, env);
                var def = args.ElementAtOrDefault(0) ?? kw.GetValueOrDefault("default") ?? (name == "int" ? JNumber.Int(0) : JNumber.Float(0));
                switch (operand)
                {
                    case JString s:
                    {
                        double v = name == "int" ? JsNumber.ParseInt(s.Value) : JsNumber.ParseFloat(s.Value);
                        return double.IsNaN(v) ? def : new JNumber(v, name == "float");
                    }
                    case JNumber n: return name == "int" ? JNumber.Int(Math.Truncate(n.Value) + 0) : JNumber.Float(n.Value);
                    case JBool b: return new JNumber(b.Value ? 1 : 0, name == "float");
                    default: throw new JinjaRenderException($"Cannot apply filter \"{name}\" to type: {operand.TypeName}");
                }
            }
            if (name == "default")
            {
                var (args, kw) = EvaluateArguments(call.Args, env);
                var def = args.ElementAtOrDefault(0) ?? S("");
                var boolean = args.ElementAtOrDefault(1) ?? kw.GetValueOrDefault("boolean") ?? JBool.False;
                if (boolean is not JBool bb) throw new JinjaRenderException("`default` filter flag must be a boolean");
                return operand is JUndefined || (bb.Value && !operand.Truthy) ? def : operand;
            }
            if (operand is JArray arr)
            {
                switch (name)
                {
                    case "sort":
                    {
                        var (args, kw) = EvaluateArguments(call.Args, env);
                        var reverse = args.ElementAtOrDefault(0) ?? kw.GetValueOrDefault("reverse") ?? JBool.False;
                        if (reverse is not JBool rv) throw new JinjaRenderException("reverse must be a boolean");
                        var cs = args.ElementAtOrDefault(1) ?? kw.GetValueOrDefault("case_sensitive") ?? JBool.False;
                        if (cs is not JBool csb) throw new JinjaRenderException("case_sensitive must be a boolean");
                        var attribute = args.ElementAtOrDefault(2) ?? kw.GetValueOrDefault("attribute") ?? Null;
                        if (attribute is not (JString or JNumber { IsFloat: false } or JNull)) throw new JinjaRenderException("attribute must be a string, integer, or null");
                        JValue Key(JValue item) => attribute is JNull ? item : AttributeValue(item, attribute is JNumber an ? JsNumber.ToString(an.Value) : ((JString)attribute).Value);
                        return new JArray(StableSort(arr.Items.ToList(), (a, b) =>
                        {
                            int r = Compare(Key(a), Key(b), csb.Value);
                            return rv.Value ? -r : r;
                        }));
                    }
                    case "selectattr":
                    case "rejectattr":
                    {
                        bool select = name == "selectattr";
                        if (arr.Items.Any(i => i is not (JObject or JNamespace))) throw new JinjaRenderException($"`{name}` can only be applied to array of objects");
                        if (call.Args.Any(a => a is not StringLiteral)) throw new JinjaRenderException($"arguments of `{name}` must be strings");
                        var vals = call.Args.Select(a => (JString)Evaluate(a, env)).ToList();
                        var attr = vals.ElementAtOrDefault(0);
                        var testName = vals.ElementAtOrDefault(1);
                        Func<JValue, bool> test = testName is null ? v => v.Truthy : NamedTest(testName.Value);
                        var filtered = arr.Items.Where(item =>
                        {
                            var map = item is JObject o ? o.Map : ((JNamespace)item).Map;
                            bool r = attr is not null && map.TryGetValue(attr.Value, out var a) && test(a);
                            return select ? r : !r;
                        }).ToList();
                        return new JArray(filtered);
                    }
                    case "map":
                    {
                        var (_, kw) = EvaluateArguments(call.Args, env);
                        if (!kw.TryGetValue("attribute", out var attr)) throw new JinjaRenderException("`map` expressions without `attribute` set are not currently supported.");
                        if (attr is not JString astr) throw new JinjaRenderException("attribute must be a string");
                        var def = kw.GetValueOrDefault("default");
                        return new JArray(arr.Items.Select(item =>
                        {
                            if (item is not (JObject or JNamespace)) throw new JinjaRenderException("items in map must be an object");
                            var v = AttributeValue(item, astr.Value);
                            return v is JUndefined ? def ?? Undef : v;
                        }).ToList());
                    }
                }
                throw new JinjaRenderException($"Unknown ArrayValue filter: {name}");
            }
            if (operand is JString str)
            {
                switch (name)
                {
                    case "indent":
                    {
                        var (args, kw) = EvaluateArguments(call.Args, env);
                        var width = args.ElementAtOrDefault(0) ?? kw.GetValueOrDefault("width") ?? JNumber.Int(4);
                        if (width is not (JNumber { IsFloat: false } or JString)) throw new JinjaRenderException("width must be an integer or a string");
                        var first = args.ElementAtOrDefault(1) ?? kw.GetValueOrDefault("first") ?? JBool.False;
                        var blank = args.ElementAtOrDefault(2) ?? kw.GetValueOrDefault("blank") ?? JBool.False;
                        string ind = width is JString ws ? ws.Value : new string(' ', (int)Math.Max(0, ((JNumber)width).Value));
                        return S(string.Join("\n", str.Value.Split('\n').Select((x, i) =>
                            (!first.Truthy && i == 0) || (!blank.Truthy && x.Length == 0) ? x : ind + x)));
                    }
                    case "replace":
                    {
                        var (args, kw) = EvaluateArguments(call.Args, env);
                        args.Add(new JObject(kw, ObjectKind.Kwargs));
                        return ReplaceBuiltin(str.Value, args);
                    }
                }
                throw new JinjaRenderException($"Unknown StringValue filter: {name}");
            }
            if (operand is JObject obj)
            {
                if (ObjectBuiltin(obj, name) is JFunction bf) return bf.Fn(EvaluateCallArguments(call.Args, env), env);
                throw new JinjaRenderException($"Unknown ObjectValue filter: {name}");
            }
            throw new JinjaRenderException($"Cannot apply filter \"{name}\" to type: {operand.TypeName}");
        }
        throw new JinjaRenderException($"Unknown filter: {filterNode.GetType().Name}");
    }

    // Array.prototype.join writes null and undefined as "".
    private static string JoinPart(JValue v) => v is JNull or JUndefined ? "" : v.RawStr();

    // Set membership by the underlying value (SameValueZero).
    private static bool SameValueZero(JValue a, JValue b) => a is JNumber x && b is JNumber y
        ? x.Value == y.Value || (double.IsNaN(x.Value) && double.IsNaN(y.Value))
        : StrictEquals(a, b);

    private static Func<JValue, bool> NamedTest(string name) => name switch
    {
        "boolean" => v => v is JBool,
        "callable" => v => v is JFunction,
        "false" => v => v is JBool { Value: false },
        "true" => v => v is JBool { Value: true },
        "none" => v => v is JNull,
        "string" => v => v is JString,
        "number" => v => v is JNumber,
        "integer" => v => v is JNumber { IsFloat: false },
        "iterable" => v => v is JArray { IsTuple: false } or JString,
        "mapping" => v => v is JObject,
        "sequence" => v => v is JArray or JObject or JString,
        "defined" => v => v is not JUndefined,
        "undefined" => v => v is JUndefined,
        "equalto" or "eq" => v => false,
        "odd" => v => v is JNumber { IsFloat: false } n ? n.Value % 2 != 0 : throw new JinjaRenderException($"cannot odd on {v.TypeName}"),
        "even" => v => v is JNumber { IsFloat: false } n ? n.Value % 2 == 0 : throw new JinjaRenderException($"cannot even on {v.TypeName}"),
        _ => throw new JinjaRenderException($"Unknown test: {name}"),
    };

    // ------------------------------------------------------------------ statements

    private void ExecuteSet(SetNode node, JinjaEnv env)
    {
        var rhs = node.Value is not null ? Evaluate(node.Value, env) : S(RenderBlock(node.Body, env));
        switch (node.Assignee)
        {
            case IdentifierNode id: env.Set(id.Value, rhs); break;
            case TupleLiteral t:
            {
                if (rhs is not JArray arr) throw new JinjaRenderException($"Cannot unpack non-iterable type in set: {rhs.TypeName}");
                if (arr.Items.Count != t.Value.Count) throw new JinjaRenderException($"Too {(t.Value.Count > arr.Items.Count ? "few" : "many")} items to unpack in set");
                for (int i = 0; i < t.Value.Count; i++)
                {
                    if (t.Value[i] is not IdentifierNode eid) throw new JinjaRenderException($"Cannot unpack to non-identifier in set: {t.Value[i].GetType().Name}");
                    env.Set(eid.Value, arr.Items[i]);
                }
                break;
            }
            case MemberNode m:
            {
                var obj = Evaluate(m.Object, env);
                if (obj is not JNamespace ns) throw new JinjaRenderException("cannot assign attribute on non-namespace object");
                if (m.Property is not IdentifierNode pid) throw new JinjaRenderException("Cannot assign to member with non-identifier property");
                ns.Map[pid.Value] = rhs;
                break;
            }
            default: throw new JinjaRenderException("Invalid LHS inside assignment expression");
        }
    }

    private void BindLoopVariable(Node loopVar, JValue current, JinjaEnv scope)
    {
        if (loopVar is IdentifierNode id) { scope.Set(id.Value, current); return; }
        var targets = ((TupleLiteral)loopVar).Value;
        var values = ((JArray)current).Items;
        for (int j = 0; j < targets.Count; j++)
        {
            if (targets[j] is not IdentifierNode tid) throw new JinjaRenderException($"Cannot unpack non-identifier type: {targets[j].GetType().Name}");
            scope.Set(tid.Value, values[j]);
        }
    }

    private string RenderFor(ForNode node, JinjaEnv env)
    {
        var scope = new JinjaEnv(env);
        Node? test = null;
        JValue iterable;
        if (node.Iterable is SelectNode sel) { iterable = Evaluate(sel.Lhs, scope); test = sel.Test; }
        else iterable = Evaluate(node.Iterable, scope);
        if (iterable is not (JArray or JObject)) throw new JinjaRenderException($"Expected iterable or object type in for loop: got {iterable.TypeName}");
        List<JValue> candidates = iterable is JObject o ? o.Map.Keys.Select(k => (JValue)S(k)).ToList() : ((JArray)iterable).Items;
        List<JValue> items;
        if (node.LoopVar is IdentifierNode && test is null) items = candidates.ToList();
        else
        {
            items = [];
            foreach (var current in candidates)
            {
                if (node.LoopVar is TupleLiteral tl)
                {
                    if (current is not JArray { IsTuple: false } ca) throw new JinjaRenderException($"Cannot unpack non-iterable type: {current.TypeName}");
                    int expected = tl.Value.Count, actual = ca.Items.Count;
                    if (expected != actual) throw new JinjaRenderException($"Too {(expected > actual ? "few" : "many")} items to unpack");
                }
                if (test is not null)
                {
                    var loopScope = new JinjaEnv(scope);
                    BindLoopVariable(node.LoopVar, current, loopScope);
                    if (!Evaluate(test, loopScope).Truthy) continue;
                }
                items.Add(current);
            }
        }
        var sb = new StringBuilder();
        bool noIteration = true;
        for (int i = 0; i < items.Count; i++)
        {
            Step();
            scope.Set("loop", Loop(i, items.Count, i > 0 ? items[i - 1] : null, i < items.Count - 1 ? items[i + 1] : null));
            BindLoopVariable(node.LoopVar, items[i], scope);
            try
            {
                sb.Append(RenderBlock(node.Body, scope));
            }
            catch (ContinueSignal) { continue; }
            catch (BreakSignal) { break; }
            noIteration = false;
        }
        if (noIteration) sb.Append(RenderBlock(node.DefaultBlock, scope));
        return sb.ToString();
    }

    private static JObject Loop(int i, int length, JValue? prev, JValue? next) => new(new OrderedDictionary<string, JValue>
    {
        ["index"] = JNumber.Int(i + 1),
        ["index0"] = JNumber.Int(i),
        ["revindex"] = JNumber.Int(length - i),
        ["revindex0"] = JNumber.Int(length - i - 1),
        ["first"] = JBool.Of(i == 0),
        ["last"] = JBool.Of(i == length - 1),
        ["length"] = JNumber.Int(length),
        ["previtem"] = prev ?? Undef,
        ["nextitem"] = next ?? Undef,
    }, ObjectKind.Loop);

    private static string ParamName(Node p) => p is IdentifierNode id ? id.Value : ((KeywordArgumentNode)p).Key.Value;

    // Which of caller / kwargs / varargs the body reads (names that are not parameters of the macro).
    private static HashSet<string> SpecialArguments(List<Node> parameters, List<Node> body)
    {
        var declared = parameters.Select(ParamName).ToHashSet();
        var found = new HashSet<string>();
        void Visit(object? n)
        {
            switch (n)
            {
                case null: return;
                case IdentifierNode id:
                    if (id.Value is "caller" or "kwargs" or "varargs" && !declared.Contains(id.Value)) found.Add(id.Value);
                    return;
                case FilterNode f: Visit(f.Operand); if (f.Filter is CallNode fc) Visit(fc.Args); return;
                case FilterStatementNode fs: Visit(fs.Body); if (fs.Filter is CallNode fsc) Visit(fsc.Args); return;
                case TestNode t: Visit(t.Operand); return;
                case MemberNode m: Visit(m.Object); if (m.Computed) Visit(m.Property); return;
                case KeywordArgumentNode k: Visit(k.Value); return;
                case MacroNode mac:
                    foreach (var a in mac.Args) if (a is KeywordArgumentNode ka) Visit(ka.Value);
                    Visit(mac.Body);
                    return;
                case System.Collections.IEnumerable list when n is not string:
                    foreach (var x in list) Visit(x is ValueTuple<Node, Node> kv ? new List<Node> { kv.Item1, kv.Item2 } : x);
                    return;
                case Node node:
                    foreach (var prop in node.GetType().GetProperties())
                        if (prop.Name != "EqualityContract" && prop.Name != "SpecialArguments") Visit(prop.GetValue(node));
                    return;
            }
        }
        Visit(body);
        return found;
    }

    private void BindMacroArguments(string displayName, List<Node> parameters, HashSet<string> special, List<JValue> args, JinjaEnv scope)
    {
        var positional = args.ToList();
        var keyword = new OrderedDictionary<string, JValue>();
        if (positional.Count > 0 && positional[^1] is JObject { Kind: ObjectKind.Kwargs } kw)
        {
            keyword = new OrderedDictionary<string, JValue>(kw.Map);
            positional.RemoveAt(positional.Count - 1);
        }
        var pending = new List<(string, Node)>();
        for (int i = 0; i < parameters.Count; i++)
        {
            string name = ParamName(parameters[i]);
            Node? def = parameters[i] is KeywordArgumentNode k ? k.Value : null;
            JValue? value = i < positional.Count ? positional[i] : null;
            if (value is null && keyword.TryGetValue(name, out var kv)) { value = kv; keyword.Remove(name); }
            if (value is null && def is not null) pending.Add((name, def));
            scope.Set(name, value ?? Undef);
        }
        if (special.Contains("kwargs")) scope.Set("kwargs", new JObject(keyword));
        else if (keyword.Count > 0) throw new JinjaRenderException($"macro {displayName} takes no keyword argument '{keyword.GetAt(0).Key}'");
        if (special.Contains("varargs")) scope.Set("varargs", new JArray(positional.Skip(parameters.Count).ToList()));
        else if (positional.Count > parameters.Count) throw new JinjaRenderException($"macro {displayName} takes not more than {parameters.Count} argument(s)");
        foreach (var (name, def) in pending) scope.Set(name, Evaluate(def, scope));
    }

    private JValue EvaluateMacro(MacroNode node, JinjaEnv env)
    {
        node.SpecialArguments ??= SpecialArguments(node.Args, node.Body);
        var special = node.SpecialArguments;
        env.Set(node.Name.Value, new JFunction((args, callSite) =>
        {
            var parent = env;
            if (special.Contains("caller"))
            {
                var caller = callSite.CallBlockScope ? callSite.Vars.GetValueOrDefault("caller") : null;
                parent = new JinjaEnv(env);
                parent.Set("caller", caller ?? Undef);
            }
            var macroScope = new JinjaEnv(parent);
            BindMacroArguments($"'{node.Name.Value}'", node.Args, special, args, macroScope);
            Step();
            // A runaway recursion fails as a render error instead of overflowing the stack.
            if (++_depth > MaxMacroDepth) { _depth = 0; throw new JinjaRenderException($"macro '{node.Name.Value}': maximum recursion depth ({MaxMacroDepth}) exceeded"); }
            try { return S(RenderBlock(node.Body, macroScope)); }
            finally { if (_depth > 0) _depth--; }
        }));
        return Null;
    }

    private JValue EvaluateCallStatement(CallStatementNode node, JinjaEnv env)
    {
        var parameters = node.CallerArgs ?? [];
        node.SpecialArguments ??= SpecialArguments(parameters, node.Body);
        var special = node.SpecialArguments;
        var callerFn = new JFunction((callerArgs, _) =>
        {
            var callBlockEnv = new JinjaEnv(env);
            BindMacroArguments("None", parameters, special, callerArgs, callBlockEnv);
            return S(RenderBlock(node.Body, callBlockEnv));
        });
        var (macroArgs, macroKwargs) = EvaluateArguments(node.Call.Args, env);
        macroArgs.Add(new JObject(macroKwargs, ObjectKind.Kwargs));
        var fn = Evaluate(node.Call.Callee, env);
        if (fn is not JFunction f) throw new JinjaRenderException($"Cannot call something that is not a function: got {fn.TypeName}");
        var newEnv = new JinjaEnv(env) { CallBlockScope = true };
        newEnv.Set("caller", callerFn);
        return f.Fn(macroArgs, newEnv);
    }
}
