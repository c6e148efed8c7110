using System.Text.Json;
using Raft.Pipeline.Eval;

namespace Raft.Pipeline.Tests;

public sealed class FormatInstructionTests
{
    [Theory]
    [InlineData("brackets", null, "  [the answer is 4]\n", true)]
    [InlineData("brackets", null, "[the answer] is 4", false)]
    [InlineData("brackets", null, "[", false)]
    [InlineData("capitals", null, "THE ANSWER IS 4!", true)]
    [InlineData("capitals", null, "THE ANSWER Is 4", false)]
    [InlineData("capitals", null, "42 !", false)]
    [InlineData("lowercase", null, "the answer is 4.", true)]
    [InlineData("lowercase", null, "The answer is 4.", false)]
    [InlineData("ends_with", "done", "That is all. Done!", true)]
    [InlineData("ends_with", "done", "That is all, done.\n", true)]
    [InlineData("ends_with", "done", "I am undone.", false)]
    [InlineData("ends_with", "done", "done and more", false)]
    [InlineData("ends_with", "is it", "so is it?", true)]
    [InlineData("starts_with", "Sure", "Sure, here it is.", true)]
    [InlineData("starts_with", "Sure", "**sure** thing", true)]
    [InlineData("starts_with", "Sure", "Surely not", false)]
    [InlineData("max_words", "3", "one two three", true)]
    [InlineData("max_words", "3", "one two three four", false)]
    [InlineData("max_words", "3", "one - two -- three", true)]
    [InlineData("min_words", "2", "one", false)]
    [InlineData("min_words", "2", "one two", true)]
    [InlineData("no_commas", null, "a b c", true)]
    [InlineData("no_commas", null, "a, b", false)]
    [InlineData("contains", "Paris", "the capital is paris.", true)]
    [InlineData("contains", "Paris", "the capital is Rome.", false)]
    [InlineData("quotes", null, " \"The answer is 4.\" ", true)]
    [InlineData("quotes", null, "\"The answer\" is 4.", false)]
    [InlineData("quotes", null, "\"\"", false)]
    [InlineData("quotes", null, "\" . \"", false)]
    [InlineData("quotes", null, "", false)]
    [InlineData("json", null, "{\"value\": \"god\"}", true)]
    [InlineData("json", null, "```json\n{\"answer\": 4}\n```", true)]
    [InlineData("json", null, "{\"value\": \"\"}", false)]
    [InlineData("json", null, "{}", false)]
    [InlineData("json", null, "{value: 4}", false)]
    [InlineData("json", null, "[4]", false)]
    [InlineData("json", null, "", false)]
    [InlineData("title", null, "<<Reply>> The answer is 4.", true)]
    [InlineData("title", null, "<<>> The answer is 4.", false)]
    [InlineData("title", null, "<Reply> The answer is 4.", false)]
    [InlineData("title", null, "", false)]
    [InlineData("postscript", null, "The answer is 4.\nP.S. that is all", true)]
    [InlineData("postscript", null, "The answer is 4. P.S. that is all", false)]
    [InlineData("postscript", null, "The answer is 4.\nP.S.", false)]
    [InlineData("postscript", null, "", false)]
    [InlineData("highlight", null, "The answer is *4*.", true)]
    [InlineData("highlight", null, "The answer is ** 4.", false)]
    [InlineData("highlight", null, "The *answer\nis* 4.", false)]
    [InlineData("highlight", null, "", false)]
    [InlineData("forbidden", "the", "So 4.", true)]
    [InlineData("forbidden", "the", "Then: The answer is 4.", false)]
    [InlineData("forbidden", "the", "There, 4.", true)]
    [InlineData("forbidden", "the", "", false)]
    [InlineData("forbidden", "the", " !! ", false)]
    [InlineData("lines", "2", "line one\n\nline two\n", true)]
    [InlineData("lines", "2", "only one line", false)]
    [InlineData("lines", "1", "one", true)]
    [InlineData("lines", "1", "", false)]
    public void Checks(string kind, string? value, string response, bool expected)
    {
        var ins = new FormatInstruction(kind, value);
        Assert.Equal(expected, ins.IsSatisfied(response));
        Assert.False(string.IsNullOrWhiteSpace(ins.Describe()));
    }

    [Theory]
    [InlineData("shout", null)]
    [InlineData("max_words", null)]
    [InlineData("max_words", "many")]
    [InlineData("min_words", "0")]
    [InlineData("ends_with", "")]
    [InlineData("contains", null)]
    [InlineData("brackets", "x")]
    public void Bad_kind_or_value_names_both(string kind, string? value)
    {
        var e = Assert.Throws<ArgumentException>(() => new FormatInstruction(kind, value));
        Assert.Contains($"\"{kind}\"", e.Message);
        Assert.Contains(value == null ? "null" : $"\"{value}\"", e.Message);
    }

    [Fact]
    public void Json_round_trip_for_every_kind()
    {
        var rng = new Random();
        foreach (string kind in FormatInstruction.Kinds)
        {
            string? value = kind switch
            {
                "max_words" or "min_words" => rng.Next(1, 500).ToString(System.Globalization.CultureInfo.InvariantCulture),
                "lines" => rng.Next(1, 9).ToString(System.Globalization.CultureInfo.InvariantCulture),
                "ends_with" or "starts_with" or "contains" or "forbidden" => "w" + rng.Next(1000),
                _ => null,
            };
            var ins = new FormatInstruction(kind, value);
            string json = ins.ToJson().ToJsonString();
            Assert.Equal(ins, FormatInstruction.FromJson(json));
            Assert.Contains($"\"kind\":\"{kind}\"", json);
            if (kind is "max_words" or "min_words" or "lines") Assert.Contains($"\"value\":{value}", json); // a number, not a string
        }
        Assert.Equal(new FormatInstruction("max_words", "5"), FormatInstruction.FromJson("{\"kind\": \"max_words\", \"value\": \"5\"}"));
        Assert.Throws<ArgumentException>(() => FormatInstruction.FromJson("{\"value\": 3}"));
        Assert.Throws<ArgumentException>(() => FormatInstruction.FromJson("{\"kind\": \"max_words\", \"value\": [3]}"));
    }

    [Fact]
    public void Loose_accepts_what_strict_refuses_only_through_IFEval_variants()
    {
        var caps = new FormatInstruction("capitals");
        Assert.False(caps.IsSatisfied("Sure:\nTHE ANSWER IS 4."));
        Assert.True(caps.IsSatisfiedLoose("Sure:\nTHE ANSWER IS 4."));   // without the first line
        var ends = new FormatInstruction("ends_with", "done");
        Assert.False(ends.IsSatisfied("The answer is 4. done\nBye."));
        Assert.True(ends.IsSatisfiedLoose("The answer is 4. done\nBye."));  // without the last line
        var starts = new FormatInstruction("starts_with", "sure");
        Assert.True(starts.IsSatisfiedLoose("*sure* 4"));
        Assert.False(new FormatInstruction("lowercase").IsSatisfiedLoose("The Answer\nIs 4\nNow"));
        Assert.False(new FormatInstruction("lowercase").IsSatisfiedLoose(""));   // empty variants never count
        foreach (string kind in FormatInstruction.Kinds)
        {
            var ins = new FormatInstruction(kind, kind switch { "max_words" or "min_words" or "lines" => "2", "ends_with" or "starts_with" or "contains" or "forbidden" => "done", _ => null });
            Assert.Equal(8, Raft.Pipeline.Eval.FormatChecks.LooseVariants("a\nb\nc").Count());
            if (ins.IsSatisfied("a b\nc d")) Assert.True(ins.IsSatisfiedLoose("a b\nc d"), kind); // loose never refuses what strict accepts
        }
    }
}
