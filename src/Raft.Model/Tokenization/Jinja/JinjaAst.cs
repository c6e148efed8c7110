namespace Raft.Model.Tokenization.Jinja;

/// <summary>A node of a parsed template (statements and expressions share one base, as in <c>@huggingface/jinja</c>).</summary>
internal abstract record Node;

internal sealed record ProgramNode(List<Node> Body) : Node;
internal sealed record IfNode(Node Test, List<Node> Body, List<Node> Alternate) : Node;
internal sealed record ForNode(Node LoopVar, Node Iterable, List<Node> Body, List<Node> DefaultBlock) : Node;
internal sealed record BreakNode : Node;
internal sealed record ContinueNode : Node;
internal sealed record SetNode(Node Assignee, Node? Value, List<Node> Body) : Node;
internal sealed record MacroNode(IdentifierNode Name, List<Node> Args, List<Node> Body) : Node
{
    public HashSet<string>? SpecialArguments { get; set; }
}
internal sealed record CommentNode(string Value) : Node;
internal sealed record MemberNode(Node Object, Node Property, bool Computed) : Node;
internal sealed record CallNode(Node Callee, List<Node> Args) : Node;
internal sealed record IdentifierNode(string Value) : Node;
internal sealed record IntegerLiteral(double Value) : Node;
internal sealed record FloatLiteral(double Value) : Node;
internal sealed record StringLiteral(string Value) : Node;
internal sealed record ArrayLiteral(List<Node> Value) : Node;
internal sealed record TupleLiteral(List<Node> Value) : Node;
internal sealed record ObjectLiteral(List<(Node Key, Node Value)> Value) : Node;
internal sealed record BinaryNode(string Operator, Node Left, Node Right) : Node;
internal sealed record FilterNode(Node Operand, Node Filter) : Node;           // Filter: IdentifierNode or CallNode
internal sealed record FilterStatementNode(Node Filter, List<Node> Body) : Node;
internal sealed record SelectNode(Node Lhs, Node Test) : Node;
internal sealed record TestNode(Node Operand, bool Negate, IdentifierNode Test) : Node;
internal sealed record UnaryNode(string Operator, Node Argument) : Node;
internal sealed record SliceNode(Node? Start, Node? Stop, Node? Step) : Node;
internal sealed record KeywordArgumentNode(IdentifierNode Key, Node Value) : Node;
internal sealed record SpreadNode(Node Argument) : Node;
internal sealed record KeywordSpreadNode(Node Argument) : Node;
internal sealed record CallStatementNode(CallNode Call, List<Node>? CallerArgs, List<Node> Body) : Node
{
    public HashSet<string>? SpecialArguments { get; set; }
}
internal sealed record TernaryNode(Node Condition, Node TrueExpr, Node FalseExpr) : Node;

/// <summary>A template that does not parse (the message says what and where, as <c>@huggingface/jinja</c> words it).</summary>
public sealed class JinjaSyntaxException(string message) : Exception(message);

/// <summary>A template that fails while rendering: <c>raise_exception(…)</c> (the message is the template's) or an operation on wrong types.</summary>
public sealed class JinjaRenderException(string message) : Exception(message);
