using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Plans;

namespace SmpRobot.Tests.Plans;

public class PathOrderingAndDemoTests
{
    private static readonly string[] DemoPigments = ["charcoal-1", "charcoal-2"];

    private static double Travel(List<Dot> dots, IEnumerable<int> order)
    {
        var total = 0.0;
        Dot? previous = null;
        foreach (var i in order)
        {
            if (previous is not null)
            {
                total += Math.Sqrt(Math.Pow(dots[i].XMm - previous.XMm, 2) + Math.Pow(dots[i].YMm - previous.YMm, 2));
            }
            previous = dots[i];
        }
        return total;
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "a seeded shuffle for a deterministic test: not security")]
    private static List<Dot> Shuffled(IEnumerable<Dot> dots, int seed)
    {
        var list = dots.ToList();
        var rng = new Random(seed);
        for (var i = list.Count - 1; i > 0; i--)
        {
            var j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
        return list;
    }

    [Fact]
    public void Order_is_a_permutation_that_shortens_travel_of_a_shuffled_plan()
    {
        var dots = Shuffled(DemoPlanGenerator.Generate(1500, 7).Dots, 42);
        var order = PathOrdering.Order(dots);
        Assert.Equal(Enumerable.Range(0, dots.Count), order.Order());
        var fileTravel = Travel(dots, Enumerable.Range(0, dots.Count));
        var orderedTravel = Travel(dots, order);
        // Random order over a ~45 mm patch averages ~20 mm per hop; greedy NN ~1.2 mm.
        Assert.True(orderedTravel < fileTravel / 5, $"ordered {orderedTravel:0} mm vs file {fileTravel:0} mm");
        Assert.True(orderedTravel < dots.Count * 2.0, $"ordered {orderedTravel:0} mm for {dots.Count} dots");
    }

    [Fact]
    public void Order_starts_at_the_smallest_x_then_y_and_follows_nearest_neighbours()
    {
        var dots = new List<Dot>
        {
            PlanTestData.Dot("a", 5, 0),
            PlanTestData.Dot("b", 0, 3),
            PlanTestData.Dot("c", 0, 1),   // smallest (x, y): start
            PlanTestData.Dot("d", 1, 1),
            PlanTestData.Dot("e", 9, 9),
        };
        Assert.Equal([2, 3, 1, 0, 4], PathOrdering.Order(dots));
    }

    [Fact]
    public void Order_is_deterministic_and_handles_edge_cases()
    {
        Assert.Empty(PathOrdering.Order([]));
        Assert.Equal([0], PathOrdering.Order([PlanTestData.Dot("only", 3, 3)]));
        // All at one point: ties go to the lower index.
        var pile = Enumerable.Range(0, 50).Select(i => PlanTestData.Dot($"p{i}", 2, 2)).ToList();
        Assert.Equal(Enumerable.Range(0, 50), PathOrdering.Order(pile));
        // Non-finite coordinates go last in file order.
        var odd = new List<Dot> { PlanTestData.Dot("n", double.NaN, 0), PlanTestData.Dot("a", 1, 0), PlanTestData.Dot("b", 0, 0) };
        Assert.Equal([2, 1, 0], PathOrdering.Order(odd));
        var dots = Shuffled(DemoPlanGenerator.Generate(500, 3).Dots, 1);
        Assert.Equal(PathOrdering.Order(dots), PathOrdering.Order(dots));
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded positions for a deterministic test: not security")]
    [Fact]
    public void Order_handles_30000_dots_and_a_straggler_far_away()
    {
        var dots = new List<Dot>(30_001);
        var rng = new Random(5);
        for (var i = 0; i < 30_000; i++)
        {
            dots.Add(PlanTestData.Dot($"d{i}", rng.NextDouble() * 170, rng.NextDouble() * 170));
        }
        dots.Add(PlanTestData.Dot("far", 5000, -5000));
        var start = TimeProvider.System.GetTimestamp();
        var order = PathOrdering.Order(dots);
        var elapsed = TimeProvider.System.GetElapsedTime(start);
        Assert.Equal(Enumerable.Range(0, dots.Count), order.Order());
        // Generous bound (shared CI machine); typically ~20 ms.
        Assert.True(elapsed < TimeSpan.FromSeconds(5), $"took {elapsed}");
    }

    [Fact]
    public void Generator_is_deterministic_for_a_seed()
    {
        var a = DemoPlanGenerator.Generate(800, 11);
        var b = DemoPlanGenerator.Generate(800, 11);
        var c = DemoPlanGenerator.Generate(800, 12);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Theory]
    [InlineData(1500, 20261123)]
    [InlineData(300, 1)]
    [InlineData(1, 9)]
    public void Generator_respects_spacing_ranges_ids_and_region(int count, int seed)
    {
        var plan = DemoPlanGenerator.Generate(count, seed);
        Assert.Equal(count, plan.Dots.Count);
        Assert.Equal("mm", plan.Units);
        Assert.Equal("d00001", plan.Dots[0].Id);
        Assert.Equal($"d{count:D5}", plan.Dots[^1].Id);
        Assert.All(plan.Dots, d =>
        {
            Assert.InRange(d.DepthMm, 0.6, 1.2);
            Assert.InRange(d.DwellMs, 150, 300);
            Assert.Contains(d.PigmentId, DemoPigments);
            Assert.InRange(d.ZMm, -3, 4);
        });

        var nearest = NearestNeighbourDistances(plan.Dots);
        Assert.True(nearest.Length < 2 || nearest.Min() >= 0.8, $"min spacing {(nearest.Length < 2 ? 0 : nearest.Min())}");
        if (count >= 300)
        {
            Assert.InRange(nearest.Average(), 0.85, 1.2);
            var width = plan.Dots.Max(d => d.XMm) - plan.Dots.Min(d => d.XMm);
            var height = plan.Dots.Max(d => d.YMm) - plan.Dots.Min(d => d.YMm);
            var scale = Math.Sqrt(count / 1500.0);
            Assert.InRange(width / scale, 35, 52);
            Assert.InRange(height / scale, 35, 52);
            // Centred on the head-frame origin.
            Assert.InRange(plan.Dots.Average(d => d.XMm), -3 * scale, 3 * scale);
            Assert.InRange(plan.Dots.Average(d => d.YMm), -3 * scale, 3 * scale);
        }
    }

    [Fact]
    public void Generator_feathers_the_front_hairline()
    {
        var plan = DemoPlanGenerator.Generate(1500, 20261123);
        var halfMm = plan.Dots.Max(d => d.YMm);
        // Density in the front band (hairline) is clearly lower than in an equally tall band in the middle.
        var front = plan.Dots.Count(d => d.YMm > halfMm - 6);
        var middle = plan.Dots.Count(d => d.YMm > -3 && d.YMm <= 3);
        Assert.True(front < middle * 0.75, $"front {front} vs middle {middle}");
        // Edge dots are shallower on average.
        var frontDepth = plan.Dots.Where(d => d.YMm > halfMm - 6).Average(d => d.DepthMm);
        var middleDepth = plan.Dots.Where(d => Math.Abs(d.YMm) <= 3 && Math.Abs(d.XMm) <= 10).Average(d => d.DepthMm);
        Assert.True(frontDepth < middleDepth, $"front depth {frontDepth:0.00} vs middle {middleDepth:0.00}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(DemoPlanGenerator.MaxDotCount + 1)]
    public void Generator_rejects_bad_counts(int count) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => DemoPlanGenerator.Generate(count, 1));

    private static double[] NearestNeighbourDistances(Google.Protobuf.Collections.RepeatedField<Dot> dots)
    {
        // O(n²) on purpose: an independent check of the generator's grid.
        var result = new double[dots.Count];
        for (var i = 0; i < dots.Count; i++)
        {
            var best = double.PositiveInfinity;
            for (var j = 0; j < dots.Count; j++)
            {
                if (i != j)
                {
                    var dx = dots[i].XMm - dots[j].XMm;
                    var dy = dots[i].YMm - dots[j].YMm;
                    best = Math.Min(best, (dx * dx) + (dy * dy));
                }
            }
            result[i] = Math.Sqrt(best);
        }
        return dots.Count < 2 ? [] : result;
    }
}
