namespace Raft.Model.Tokenization.Jinja;

/// <summary>Tokens → syntax tree, with <c>@huggingface/jinja</c>'s grammar and operator precedence.</summary>
internal sealed class JinjaParser
{
    private readonly List<Token> _t;
    private int _i;

    private JinjaParser(List<Token> tokens) { _t = tokens; }

    /// <summary>
    /// The deepest syntax tree parsed: blocks, brackets, the right-recursive chains (<c>not not …</c>, <c>- - …</c>,
    /// <c>a if b else c if …</c>, <c>f()()…</c>, <c>elif</c>) and the operator chains that build left-deep trees in a loop
    /// (<c>a + b + …</c>, <c>x|f|g…</c>, <c>m[0][0]…</c>; rendering recurses through them). Real chat templates nest a few
    /// levels; a deeper one would overflow the stack (a crash, not an error) while parsing or rendering.
    /// </summary>
    public const int MaxDepth = 300;
    private int _depth;

    private void Enter()
    {
        if (++_depth > MaxDepth) throw new JinjaSyntaxException($"the template nests deeper than {MaxDepth} levels");
    }

    public static ProgramNode Parse(List<Token> tokens)
    {
        var p = new JinjaParser(tokens);
        var program = new ProgramNode([]);
        while (p._i < tokens.Count) program.Body.Add(p.ParseAny());
        return program;
    }

    private Token Cur => _i < _t.Count ? _t[_i] : throw new JinjaSyntaxException("Unexpected end of template");

    private Token Expect(TokenKind kind, string error)
    {
        var prev = _i < _t.Count ? _t[_i] : null;
        _i++;
        if (prev is null || prev.Kind != kind)
            throw new JinjaSyntaxException($"Parser Error: {error}. {prev?.Kind.ToString() ?? "end of template"} !== {kind}.");
        return prev;
    }

    private void ExpectIdentifier(string name)
    {
        if (!IsIdentifier(name)) throw new JinjaSyntaxException($"Expected {name}");
        _i++;
    }

    private bool Is(params TokenKind[] kinds)
    {
        if (_i + kinds.Length > _t.Count) return false;
        for (int k = 0; k < kinds.Length; k++) if (_t[_i + k].Kind != kinds[k]) return false;
        return true;
    }

    private bool IsStatement(params string[] names) =>
        _i + 1 < _t.Count && _t[_i].Kind == TokenKind.OpenStatement && _t[_i + 1].Kind == TokenKind.Identifier && names.Contains(_t[_i + 1].Value);

    private bool IsIdentifier(params string[] names)
    {
        if (_i + names.Length > _t.Count) return false;
        for (int k = 0; k < names.Length; k++)
            if (_t[_i + k].Kind != TokenKind.Identifier || _t[_i + k].Value != names[k]) return false;
        return true;
    }

    private Node ParseAny()
    {
        Enter();
        try
        {
            switch (Cur.Kind)
            {
                case TokenKind.Comment: return new CommentNode(_t[_i++].Value);
                case TokenKind.Text: return new StringLiteral(Expect(TokenKind.Text, "Expected text token").Value);
                case TokenKind.OpenStatement: return ParseStatement();
                case TokenKind.OpenExpression:
                    Expect(TokenKind.OpenExpression, "Expected opening expression token");
                    var e = ParseExpression();
                    Expect(TokenKind.CloseExpression, "Expected closing expression token");
                    return e;
                default: throw new JinjaSyntaxException($"Unexpected token type: {Cur.Kind}");
            }
        }
        finally { _depth--; }
    }

    private List<Node> BodyUntil(params string[] names)
    {
        var body = new List<Node>();
        while (!IsStatement(names))
        {
            if (_i >= _t.Count) throw new JinjaSyntaxException($"Unexpected end of template: expected {{% {string.Join(" or ", names)} %}}");
            body.Add(ParseAny());
        }
        return body;
    }

    private void ExpectEnd(string name)
    {
        Expect(TokenKind.OpenStatement, "Expected {% token");
        ExpectIdentifier(name);
        Expect(TokenKind.CloseStatement, "Expected %} token");
    }

    private Node ParseStatement()
    {
        Expect(TokenKind.OpenStatement, "Expected opening statement token");
        if (Cur.Kind != TokenKind.Identifier) throw new JinjaSyntaxException($"Unknown statement, got {Cur.Kind}");
        string name = Cur.Value;
        switch (name)
        {
            case "set":
                _i++;
                return ParseSet();
            case "if":
            {
                _i++;
                var r = ParseIf();
                ExpectEnd("endif");
                return r;
            }
            case "macro":
            {
                _i++;
                var n = ParsePrimary();
                if (n is not IdentifierNode id) throw new JinjaSyntaxException("Expected identifier following macro statement");
                var args = ParseArgs(parameters: true);
                Expect(TokenKind.CloseStatement, "Expected closing statement token");
                var body = BodyUntil("endmacro");
                ExpectEnd("endmacro");
                return new MacroNode(id, args, body);
            }
            case "for":
            {
                _i++;
                var r = ParseFor();
                ExpectEnd("endfor");
                return r;
            }
            case "call":
            {
                _i++;
                List<Node>? callerArgs = null;
                if (Is(TokenKind.OpenParen)) callerArgs = ParseArgs(parameters: true);
                var callee = ParsePrimary();
                if (callee is not IdentifierNode) throw new JinjaSyntaxException("Expected identifier following call statement");
                var callArgs = ParseArgs(parameters: false);
                Expect(TokenKind.CloseStatement, "Expected closing statement token");
                var body = BodyUntil("endcall");
                Expect(TokenKind.OpenStatement, "Expected '{%'");
                ExpectIdentifier("endcall");
                Expect(TokenKind.CloseStatement, "Expected closing statement token");
                return new CallStatementNode(new CallNode(callee, callArgs), callerArgs, body);
            }
            case "break":
                _i++;
                Expect(TokenKind.CloseStatement, "Expected closing statement token");
                return new BreakNode();
            case "continue":
                _i++;
                Expect(TokenKind.CloseStatement, "Expected closing statement token");
                return new ContinueNode();
            case "filter":
            {
                _i++;
                var f = ParsePrimary();
                if (f is IdentifierNode && Is(TokenKind.OpenParen)) f = ParseCall(f);
                Expect(TokenKind.CloseStatement, "Expected closing statement token");
                var body = BodyUntil("endfilter");
                Expect(TokenKind.OpenStatement, "Expected '{%'");
                ExpectIdentifier("endfilter");
                Expect(TokenKind.CloseStatement, "Expected '%}'");
                return new FilterStatementNode(f, body);
            }
            default:
                throw new JinjaSyntaxException($"Unknown statement type: {name}");
        }
    }

    private Node ParseSet()
    {
        var left = ParseExpressionSequence();
        Node? value = null;
        var body = new List<Node>();
        if (Is(TokenKind.Equals))
        {
            _i++;
            value = ParseExpressionSequence();
        }
        else
        {
            Expect(TokenKind.CloseStatement, "Expected %} token");
            body = BodyUntil("endset");
            Expect(TokenKind.OpenStatement, "Expected {% token");
            ExpectIdentifier("endset");
        }
        Expect(TokenKind.CloseStatement, "Expected closing statement token");
        return new SetNode(left, value, body);
    }

    private IfNode ParseIf()
    {
        Enter();
        try
        {
            var test = ParseExpression();
            Expect(TokenKind.CloseStatement, "Expected closing statement token");
            var body = BodyUntil("elif", "else", "endif");
            var alternate = new List<Node>();
            if (IsStatement("elif"))
            {
                _i += 2;
                alternate.Add(ParseIf());
            }
            else if (IsStatement("else"))
            {
                _i += 2;
                Expect(TokenKind.CloseStatement, "Expected closing statement token");
                alternate = BodyUntil("endif");
            }
            return new IfNode(test, body, alternate);
        }
        finally { _depth--; }
    }

    private Node ParseExpressionSequence(bool primary = false)
    {
        var list = new List<Node> { primary ? ParsePrimary() : ParseExpression() };
        bool isTuple = Is(TokenKind.Comma);
        while (isTuple)
        {
            _i++;
            list.Add(primary ? ParsePrimary() : ParseExpression());
            if (!Is(TokenKind.Comma)) break;
        }
        return isTuple ? new TupleLiteral(list) : list[0];
    }

    private ForNode ParseFor()
    {
        var loopVar = ParseExpressionSequence(primary: true);
        if (loopVar is not (IdentifierNode or TupleLiteral))
            throw new JinjaSyntaxException($"Expected identifier/tuple for the loop variable, got {loopVar.GetType().Name} instead");
        if (!IsIdentifier("in")) throw new JinjaSyntaxException("Expected `in` keyword following loop variable");
        _i++;
        var iterable = ParseExpression();
        Expect(TokenKind.CloseStatement, "Expected closing statement token");
        var body = BodyUntil("endfor", "else");
        var alt = new List<Node>();
        if (IsStatement("else"))
        {
            _i += 2;
            Expect(TokenKind.CloseStatement, "Expected closing statement token");
            alt = BodyUntil("endfor");
        }
        return new ForNode(loopVar, iterable, body, alt);
    }

    private Node ParseExpression() => ParseIfExpression();

    private Node ParseIfExpression()
    {
        Enter();
        try
        {
            var a = ParseOr();
            if (IsIdentifier("if"))
            {
                _i++;
                var test = ParseOr();
                if (IsIdentifier("else"))
                {
                    _i++;
                    var f = ParseIfExpression();
                    return new TernaryNode(test, a, f);
                }
                return new SelectNode(a, test);
            }
            return a;
        }
        finally { _depth--; }
    }

    private Node ParseOr()
    {
        var left = ParseAnd();
        int chain = 0;
        while (IsIdentifier("or"))
        {
            Enter(); chain++;
            _i++;
            left = new BinaryNode("or", left, ParseAnd());
        }
        _depth -= chain;
        return left;
    }

    private Node ParseAnd()
    {
        var left = ParseNot();
        int chain = 0;
        while (IsIdentifier("and"))
        {
            Enter(); chain++;
            _i++;
            left = new BinaryNode("and", left, ParseNot());
        }
        _depth -= chain;
        return left;
    }

    private Node ParseNot()
    {
        Enter();
        try
        {
            Node? right = null;
            while (IsIdentifier("not"))
            {
                _i++;
                var arg = ParseNot();
                right = new UnaryNode("not", arg);
            }
            return right ?? ParseComparison();
        }
        finally { _depth--; }
    }

    private Node ParseComparison()
    {
        var left = ParseAdditive();
        int chain = 0;
        while (true)
        {
            string op;
            if (IsIdentifier("not", "in")) { op = "not in"; _i += 2; }
            else if (IsIdentifier("in")) { op = "in"; _i++; }
            else if (Is(TokenKind.ComparisonBinaryOperator)) op = _t[_i++].Value;
            else break;
            Enter(); chain++;
            left = new BinaryNode(op, left, ParseAdditive());
        }
        _depth -= chain;
        return left;
    }

    private Node ParseAdditive()
    {
        var left = ParseMultiplicative();
        int chain = 0;
        while (Is(TokenKind.AdditiveBinaryOperator))
        {
            Enter(); chain++;
            string op = _t[_i++].Value;
            left = new BinaryNode(op, left, ParseMultiplicative());
        }
        _depth -= chain;
        return left;
    }

    private Node ParseCallMember()
    {
        var member = ParseMember(ParsePrimary());
        return Is(TokenKind.OpenParen) ? ParseCall(member) : member;
    }

    private Node ParseCall(Node callee)
    {
        Enter();
        try
        {
            Node e = new CallNode(callee, ParseArgs(parameters: false));
            e = ParseMember(e);
            if (Is(TokenKind.OpenParen)) e = ParseCall(e);
            return e;
        }
        finally { _depth--; }
    }

    private List<Node> ParseArgs(bool parameters)
    {
        Expect(TokenKind.OpenParen, "Expected opening parenthesis for arguments list");
        var args = new List<Node>();
        var names = new HashSet<string>();
        bool sawKeyword = false, sawSpread = false;
        while (!Is(TokenKind.CloseParen))
        {
            if (_i >= _t.Count) throw new JinjaSyntaxException("Unexpected end of template in an argument list");
            bool kwSpread = Is(TokenKind.ExponentiationBinaryOperator);
            bool posSpread = Is(TokenKind.MultiplicativeBinaryOperator) && _t[_i].Value == "*";
            if (parameters && (kwSpread || posSpread)) throw new JinjaSyntaxException("Argument unpacking is not allowed in parameter declarations");
            if (kwSpread)
            {
                _i++;
                args.Add(new KeywordSpreadNode(ParseExpression()));
                if (Is(TokenKind.Comma)) _i++;
                if (!Is(TokenKind.CloseParen)) throw new JinjaSyntaxException("Expected closing parenthesis: `**` must be applied to the final argument");
                break;
            }
            Node arg;
            if (posSpread)
            {
                if (sawSpread) throw new JinjaSyntaxException("Only one `*` argument unpacking is allowed");
                sawSpread = true;
                _i++;
                arg = new SpreadNode(ParseExpression());
            }
            else
            {
                arg = ParseExpression();
                if (Is(TokenKind.Equals))
                {
                    _i++;
                    if (arg is not IdentifierNode key)
                        throw new JinjaSyntaxException(parameters ? "Expected identifier for parameter declaration" : "Expected identifier for keyword argument");
                    arg = new KeywordArgumentNode(key, ParseExpression());
                }
                if (parameters)
                {
                    string pname = arg switch
                    {
                        IdentifierNode id => id.Value,
                        KeywordArgumentNode kw => kw.Key.Value,
                        _ => throw new JinjaSyntaxException("Expected identifier for parameter declaration"),
                    };
                    if (!names.Add(pname)) throw new JinjaSyntaxException($"Duplicate parameter name: {pname}");
                }
                if (arg is KeywordArgumentNode) sawKeyword = true;
                else if (sawKeyword)
                    throw new JinjaSyntaxException(parameters ? "Non-default argument follows default argument" : "Positional arguments must come before keyword arguments");
                else if (sawSpread) throw new JinjaSyntaxException("Positional arguments must not follow `*` argument unpacking");
            }
            args.Add(arg);
            if (Is(TokenKind.Comma)) _i++;
        }
        Expect(TokenKind.CloseParen, "Expected closing parenthesis for arguments list");
        return args;
    }

    private Node ParseMemberArguments()
    {
        var slices = new List<Node?>();
        bool isSlice = false;
        while (!Is(TokenKind.CloseSquareBracket))
        {
            if (_i >= _t.Count) throw new JinjaSyntaxException("Unexpected end of template in a subscript");
            if (Is(TokenKind.Colon))
            {
                slices.Add(null);
                _i++;
                isSlice = true;
            }
            else
            {
                slices.Add(ParseExpression());
                if (Is(TokenKind.Colon)) { _i++; isSlice = true; }
            }
        }
        if (slices.Count == 0) throw new JinjaSyntaxException("Expected at least one argument for member/slice expression");
        if (isSlice)
        {
            if (slices.Count > 3) throw new JinjaSyntaxException("Expected 0-3 arguments for slice expression");
            return new SliceNode(slices.ElementAtOrDefault(0), slices.ElementAtOrDefault(1), slices.ElementAtOrDefault(2));
        }
        return slices[0]!;
    }

    private Node ParseMember(Node obj)
    {
        int chain = 0;
        while (Is(TokenKind.Dot) || Is(TokenKind.OpenSquareBracket))
        {
            Enter(); chain++;
            var op = _t[_i++];
            bool computed = op.Kind == TokenKind.OpenSquareBracket;
            Node prop;
            if (computed)
            {
                prop = ParseMemberArguments();
                Expect(TokenKind.CloseSquareBracket, "Expected closing square bracket");
            }
            else
            {
                prop = ParsePrimary();
                if (prop is not (IdentifierNode or IntegerLiteral)) throw new JinjaSyntaxException("Expected identifier or integer following dot operator");
            }
            obj = new MemberNode(obj, prop, computed);
        }
        _depth -= chain;
        return obj;
    }

    private Node ParseMultiplicative()
    {
        var left = ParsePower();
        int chain = 0;
        while (Is(TokenKind.MultiplicativeBinaryOperator))
        {
            Enter(); chain++;
            string op = _t[_i++].Value;
            left = new BinaryNode(op, left, ParsePower());
        }
        _depth -= chain;
        return left;
    }

    private Node ParsePower()
    {
        var left = ParseTest();
        int chain = 0;
        while (Is(TokenKind.ExponentiationBinaryOperator))
        {
            Enter(); chain++;
            _i++;
            left = new BinaryNode("**", left, ParseTest());
        }
        _depth -= chain;
        return left;
    }

    private Node ParseTest()
    {
        var operand = ParseFilter();
        int chain = 0;
        while (IsIdentifier("is"))
        {
            Enter(); chain++;
            _i++;
            bool negate = IsIdentifier("not");
            if (negate) _i++;
            if (ParsePrimary() is not IdentifierNode test) throw new JinjaSyntaxException("Expected identifier for the test");
            operand = new TestNode(operand, negate, test);
        }
        _depth -= chain;
        return operand;
    }

    private Node ParseFilter()
    {
        var operand = ParseUnarySign();
        int chain = 0;
        while (Is(TokenKind.Pipe))
        {
            Enter(); chain++;
            _i++;
            Node f = ParsePrimary();
            if (f is not IdentifierNode) throw new JinjaSyntaxException("Expected identifier for the filter");
            if (Is(TokenKind.OpenParen)) f = ParseCall(f);
            operand = new FilterNode(operand, f);
        }
        _depth -= chain;
        return operand;
    }

    private Node ParseUnarySign()
    {
        Enter();
        try
        {
            if (_i < _t.Count && _t[_i].Kind is TokenKind.UnaryOperator or TokenKind.AdditiveBinaryOperator && _t[_i].Value is "-" or "+")
            {
                string op = _t[_i++].Value;
                return new UnaryNode(op, ParseUnarySign());
            }
            return ParseCallMember();
        }
        finally { _depth--; }
    }

    private Node ParsePrimary()
    {
        var tok = _i < _t.Count ? _t[_i++] : throw new JinjaSyntaxException("Unexpected end of template");
        switch (tok.Kind)
        {
            case TokenKind.NumericLiteral:
            {
                double v = double.Parse(tok.Value, System.Globalization.CultureInfo.InvariantCulture);
                return tok.Value.Contains('.') ? new FloatLiteral(v) : new IntegerLiteral(v);
            }
            case TokenKind.StringLiteral:
            {
                string v = tok.Value;
                while (Is(TokenKind.StringLiteral)) v += _t[_i++].Value;
                return new StringLiteral(v);
            }
            case TokenKind.Identifier: return new IdentifierNode(tok.Value);
            case TokenKind.OpenParen:
            {
                var e = ParseExpressionSequence();
                Expect(TokenKind.CloseParen, "Expected closing parenthesis");
                return e;
            }
            case TokenKind.OpenSquareBracket:
            {
                var values = new List<Node>();
                while (!Is(TokenKind.CloseSquareBracket))
                {
                    if (_i >= _t.Count) throw new JinjaSyntaxException("Unexpected end of template in a list");
                    values.Add(ParseExpression());
                    if (Is(TokenKind.Comma)) _i++;
                }
                _i++;
                return new ArrayLiteral(values);
            }
            case TokenKind.OpenCurlyBracket:
            {
                var values = new List<(Node, Node)>();
                while (!Is(TokenKind.CloseCurlyBracket))
                {
                    if (_i >= _t.Count) throw new JinjaSyntaxException("Unexpected end of template in a dict");
                    var key = ParseExpression();
                    Expect(TokenKind.Colon, "Expected colon between key and value in object literal");
                    values.Add((key, ParseExpression()));
                    if (Is(TokenKind.Comma)) _i++;
                }
                _i++;
                return new ObjectLiteral(values);
            }
            default:
                throw new JinjaSyntaxException($"Unexpected token: {tok.Kind}");
        }
    }
}
