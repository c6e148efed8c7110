using Raft.Pipeline.Demo.V2;
using Raft.Pipeline.Eval;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

public class DemoV2WorldTests
{
    private static readonly FinalTokenExtractor Final = new();

    [Fact]
    public void The_extractor_recovers_every_domain_reference_and_house_answer()
    {
        foreach (string d in DemoV2Domains.Names)
            foreach (bool half in new[] { false, true })
                Assert.All(DemoV2Domains.Items(d, 400, 3, half), it =>
                {
                    Assert.Equal(it.Final, Final.Extract(it.Reference));
                    Assert.Equal(it.Final, Final.Extract(it.House));
                });
        // the training sets as built for the runs, references and the house-style control
        var train = DemoV2Domains.Train(256, 7);
        var house = DemoV2Domains.Train(256, 7, houseStyle: true);
        Assert.Equal(768, train.Count);
        for (int i = 0; i < train.Count; i++)
        {
            Assert.Equal(train[i].Prompt, house[i].Prompt);
            Assert.Equal(Final.Extract(house[i].Answer), Final.Extract(train[i].Answer));
            Assert.DoesNotContain("The answer is", train[i].Answer);
        }
        Assert.All(DemoV2Eval.General().Items, it => Assert.NotNull(Final.Extract(it.Answer!)));
        var rng = new Random(1);
        for (int i = 0; i < 2000; i++)
        {
            var q = DemoV2World.General(rng);
            Assert.Equal(q.Final, Final.Extract(q.House));
        }
    }

    [Fact]
    public void Each_domain_keeps_one_consistent_notation()
    {
        static string Shape(string s) => new(s.Select(c => char.IsLetter(c) ? 'w' : char.IsDigit(c) ? '9' : c).ToArray());
        foreach (string d in DemoV2Domains.Names)
        {
            var shapes = DemoV2Domains.Items(d, 200, 1, false)
                .Select(it => System.Text.RegularExpressions.Regex.Replace(Shape(it.Reference), "w+|9+", "x")).Distinct().ToArray();
            Assert.True(shapes.Length == 1, $"{d}: {string.Join(" ; ", shapes)}");
        }
    }

    [Fact]
    public void Train_and_eval_halves_are_disjoint_and_distinct()
    {
        var train = DemoV2Domains.Train(256, 7).Select(e => e.Prompt).ToHashSet();
        var eval = DemoV2Eval.Domain().Items.Select(i => i.Prompt).ToArray();
        Assert.Equal(768, train.Count);
        Assert.Equal(300, eval.Distinct().Count());
        Assert.DoesNotContain(eval, train.Contains);
    }

    [Fact]
    public void The_base_stream_never_shows_a_domain_prompt_or_an_author_mark()
    {
        var stream = DemoV2Base.Stream(20000, 1);
        foreach (var e in stream)
        {
            foreach (string mark in DemoV2Domains.AuthorMarks)
            {
                Assert.DoesNotContain(mark, e.Prompt);
                Assert.DoesNotContain(mark, e.Answer);
            }
            Assert.False(e.Prompt.StartsWith("Add the lengths of", StringComparison.Ordinal), e.Prompt);
            Assert.False(e.Prompt.StartsWith("Reverse ", StringComparison.Ordinal), e.Prompt);
            Assert.DoesNotMatch(@"^Which is larger, \d+\+\d+ or", e.Prompt);
        }
        Assert.Equal(DemoV2Base.Stream(300, 4), DemoV2Base.Stream(300, 4));
        Assert.NotEqual(DemoV2Base.Stream(300, 4), DemoV2Base.Stream(300, 5));
    }

    [Fact]
    public void The_eval_sets_have_the_designed_sizes_and_breadth()
    {
        var general = DemoV2Eval.General();
        Assert.Equal(400, general.Items.Count);
        Assert.Equal(10, general.Items.Select(i => i.Id.Split('-')[0]).Distinct().Count());
        Assert.True(general.Items.Count(i => !long.TryParse(Final.Extract(i.Answer!), out _)) >= 160, "at least four string task types");
        var format = DemoV2Eval.Format();
        Assert.Equal(320, format.Items.Count);
        Assert.All(format.Items, i => Assert.InRange(i.Instructions.Count, 2, 3));
        Assert.Equal(FormatInstruction.Kinds.Count, format.Items.SelectMany(i => i.Instructions).Select(i => i.Kind).Distinct().Count());
        Assert.Equal(300, DemoV2Eval.Domain().Items.Count);
    }

    [Fact]
    public void No_format_item_is_passed_by_a_degenerate_answer_and_each_built_answer_passes()
    {
        foreach (var item in DemoV2Eval.Format().Items)
            foreach (string d in DemoV2Formats.Degenerate.Append(""))
            {
                Assert.False(item.Instructions.All(i => i.IsSatisfied(d)), $"{item.Id} passed strictly by \"{d}\"");
                Assert.False(item.Instructions.All(i => i.IsSatisfiedLoose(d)), $"{item.Id} passed loosely by \"{d}\"");
            }
        var rng = new Random(11);
        for (int n = 0; n < 3000; n++)
        {
            var f = DemoV2Formats.Draw(rng, 1, 3);
            Assert.True(f.Instructions.All(i => i.IsSatisfied(f.Answer)), $"{f.Prompt} -> {f.Answer}");
            Assert.True(DemoV2Formats.Compatible(f.Instructions.Select(i => i.Kind).ToArray()));
            Assert.StartsWith(f.Question.Prompt + "\n\n", f.Prompt);
        }
    }

    [Fact]
    public void Base_config_is_about_five_million_parameters_and_fits_the_stream()
    {
        var model = Raft.Model.LlamaModel.CreateRandom(DemoV2Base.Config, 1);
        long n = model.Parameters.ValueCount;
        Assert.InRange(n, 4_000_000, 6_000_000);
        var tok = Raft.Model.Tokenization.ByteTokenizer.Instance;
        int longest = DemoV2Base.Stream(5000, 2).Max(e => Raft.Model.Tokenization.ChatTemplate.Raft.Encode(tok,
            [Raft.Model.Tokenization.ChatMessage.User(e.Prompt), Raft.Model.Tokenization.ChatMessage.Assistant(e.Answer)], addGenerationPrompt: false).Ids.Length);
        Assert.True(longest <= DemoV2Base.Config.MaxPositionEmbeddings, $"longest stream item {longest} tokens");
    }
}
