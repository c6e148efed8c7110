using Raft.Model.Tokenization;

namespace Raft.Model.Tests.Tokenization;

public class SpecialTokenSplitterTests
{
    private static List<string> Split(IReadOnlyDictionary<string, int> specials, string text)
    {
        var parts = new List<string>();
        new SpecialTokenSplitter(specials).Split(text, t => parts.Add("T:" + t), id => parts.Add("S:" + id));
        return parts;
    }

    [Fact]
    public void LeftmostLongestMatchWins()
    {
        var specials = new Dictionary<string, int> { ["<a>"] = 1, ["<a>b"] = 2, ["b"] = 3 };
        Assert.Equal(["T:x", "S:2", "T:y", "S:1"], Split(specials, "x<a>by<a>"));
        Assert.Equal(["S:3", "S:3"], Split(specials, "bb"));
        Assert.Equal(["T:<a"], Split(specials, "<a"));
        Assert.Empty(Split(specials, ""));
    }

    [Fact]
    public void NoSpecials_PassesTextThrough()
    {
        Assert.Equal(["T:<|im_start|>"], Split(new Dictionary<string, int>(), "<|im_start|>"));
    }
}
