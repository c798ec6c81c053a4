using SmpRobot.Geometry;
using SmpRobot.Treatment.Sampling;

namespace SmpRobot.Treatment.Metrics;

/// <summary>How regular or random a set of dots is, on an area of the scalp.</summary>
/// <param name="Count">Dots.</param>
/// <param name="AreaMm2">The area they lie on, mm².</param>
/// <param name="DensityPerCm2">Count / area, dots/cm².</param>
/// <param name="MinDistanceMm">The closest pair, mm.</param>
/// <param name="MeanNearestMm">Mean distance from a dot to its nearest neighbour, mm.</param>
/// <param name="Rho">
/// Normalized minimum distance ρ = r / r_max (Lagae and Dutré): r is the Poisson-disk radius, half the
/// closest pair's distance, and r_max = √(A / (2√3·N)) the largest radius N disks can have on the area
/// (hexagonal packing). Dart throwing reaches about 0.77; above about 0.85 the pattern turns regular.
/// </param>
/// <param name="ClarkEvans">
/// Clark–Evans ratio R: the mean nearest-neighbour distance over its expectation for random points, 0.5 · √(A/N),
/// with Donnelly's correction for the area's edge (+ (0.0514 + 0.041/√N) · P/N, P the perimeter). 1 for random
/// points, 2.15 for a hexagonal grid.
/// </param>
/// <param name="NearestCv">Coefficient of variation of the nearest-neighbour distances (0 for a grid).</param>
public sealed record PatternStats(int Count, double AreaMm2, double DensityPerCm2, double MinDistanceMm, double MeanNearestMm, double Rho, double ClarkEvans, double NearestCv)
{
    public static readonly PatternStats Empty = new(0, 0, 0, double.NaN, double.NaN, double.NaN, double.NaN, double.NaN);
}

/// <summary>Blue-noise statistics of dot sets (nearest neighbours in 3-D on the scalp).</summary>
public static class PatternMetrics
{
    /// <summary>Statistics of <paramref name="points"/> lying on <paramref name="areaMm2"/> with perimeter <paramref name="perimeterMm"/>.</summary>
    public static PatternStats Of(IReadOnlyList<Vec3> points, double areaMm2, double perimeterMm)
    {
        ArgumentNullException.ThrowIfNull(points);
        var n = points.Count;
        if (n < 2 || !(areaMm2 > 0)) return PatternStats.Empty with { Count = n, AreaMm2 = areaMm2, DensityPerCm2 = areaMm2 > 0 ? n / areaMm2 * 100 : 0 };
        var nearest = NearestDistances(points, points, excludeSelf: true);
        var mean = nearest.Average();
        var std = Math.Sqrt(nearest.Sum(d => (d - mean) * (d - mean)) / n);
        var min = nearest.Min();
        var rMax = Math.Sqrt(areaMm2 / (2 * Math.Sqrt(3) * n));
        var expected = (0.5 * Math.Sqrt(areaMm2 / n)) + ((0.0514 + (0.041 / Math.Sqrt(n))) * perimeterMm / n);
        return new PatternStats(n, areaMm2, n / areaMm2 * 100, min, mean, min / 2 / rMax, mean / expected, std / mean);
    }

    /// <summary>For each of <paramref name="from"/>, the distance to its nearest point of <paramref name="to"/> (infinity when <paramref name="to"/> is empty).</summary>
    public static double[] NearestDistances(IReadOnlyList<Vec3> from, IReadOnlyList<Vec3> to, bool excludeSelf = false)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        var result = new double[from.Count];
        if (to.Count == 0)
        {
            Array.Fill(result, double.PositiveInfinity);
            return result;
        }
        // Grow the search cell until every query finds a neighbour.
        var cell = 2.0;
        var pending = Enumerable.Range(0, from.Count).ToList();
        while (pending.Count > 0)
        {
            var grid = new PointGrid(to, cell);
            var found = new List<int>();
            var next = new List<int>();
            foreach (var i in pending)
            {
                var best = double.PositiveInfinity;
                grid.Near(from[i], found);
                foreach (var j in found)
                {
                    if (excludeSelf && ReferenceEquals(from, to) && i == j) continue;
                    var d = from[i].DistanceTo(to[j]);
                    if (d < best) best = d;
                }
                // Only a neighbour within one cell is sure to be the nearest.
                if (best <= cell) result[i] = best;
                else next.Add(i);
            }
            pending = next;
            cell *= 2;
            if (cell > 1e5)
            {
                foreach (var i in pending) result[i] = double.PositiveInfinity;
                break;
            }
        }
        return result;
    }
}
