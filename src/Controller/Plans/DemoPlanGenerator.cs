using System.Globalization;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Controller.Plans;

/// <summary>
/// Generates natural-looking SMP demo patches: irregular (Poisson-disk) dots in a roughly round crown
/// region centred on the head-frame origin, about 40 x 40 mm for 1,500 dots, with a feathered hairline
/// (the +Y side is the front): towards the edge, and most towards the front, dots get sparser, shallower,
/// shorter and lighter. Skin height z is a gentle dome (about 3 mm at the centre, under 1 mm at the edge).
/// </summary>
/// <remarks>
/// Written by hand (Bridson's dart-throwing with a variable radius) because no package on the registry
/// offers spatially varying Poisson-disk sampling; it is ~100 lines and fully deterministic.
/// </remarks>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded pseudo-random placement, so that a seed always gives the same demo plan: not security")]
public static class DemoPlanGenerator
{
    /// <summary>Poisson-disk radius in the interior, mm: the smallest distance between any two dots.</summary>
    public const double InteriorSpacingMm = 0.82;

    /// <summary>Largest dot count accepted.</summary>
    public const int MaxDotCount = 100_000;

    private const double MinDepthMm = 0.6, MaxDepthMm = 1.2, MinDwellMs = 150, MaxDwellMs = 300;
    private const int CandidatesPerPoint = 30;

    /// <summary>
    /// Generates <paramref name="dotCount"/> dots (ids "d00001", ...). The same seed gives the same plan.
    /// Depth 0.6-1.2 mm (smooth field), dwell 150-300 ms, pigments "charcoal-1" (body) and "charcoal-2"
    /// (mostly at the hairline); every pair of dots is at least <see cref="InteriorSpacingMm"/> apart
    /// (minus 0.002 mm for rounding to micrometres).
    /// </summary>
    public static Plan Generate(int dotCount, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(dotCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(dotCount, MaxDotCount);

        var rng = new Random(seed);
        var field = new Field(rng);
        // Empirically ~1,500 dots fill a crown of half-width ~19 mm; regrow the region until it holds enough.
        var radiusMm = Math.Max(19.0 * Math.Sqrt(dotCount / 1500.0), 2.0);
        List<Point> samples;
        while (true)
        {
            samples = Grow(field, radiusMm, rng);
            if (samples.Count >= dotCount)
            {
                break;
            }
            radiusMm *= samples.Count == 0 ? 2 : Math.Sqrt((double)dotCount / samples.Count) * 1.02;
        }

        // Too many: drop the outermost (with a little jitter so the trimmed edge stays ragged).
        var keep = samples
            .Select((s, index) => (s, index, key: s.Rho + (0.04 * rng.NextDouble())))
            .OrderBy(t => t.key).ThenBy(t => t.index)
            .Take(dotCount)
            .OrderBy(t => t.index)
            .Select(t => t.s)
            .ToList();

        var plan = new Plan
        {
            Name = string.Create(CultureInfo.InvariantCulture, $"demo crown ({dotCount} dots, seed {seed})"),
            Units = "mm",
        };
        for (var i = 0; i < keep.Count; i++)
        {
            var s = keep[i];
            var (x, y) = (s.X, s.Y);
            var f = s.Feather;
            var depthMm = 0.92 + (0.14 * Math.Sin((x / 7.0) + field.P3) * Math.Cos((y / 9.0) + field.P4))
                + (0.08 * Math.Sin(((x + y) / 13.0) + field.P5)) - (0.25 * f);
            var dwellMs = 235 + (40 * Math.Sin((x / 11.0) + field.P6) * Math.Sin((y / 8.0) + field.P7)) - (70 * f);
            // Scalp curvature radius ~90 mm: a dome 3 mm high at the centre.
            var zMm = 3.0 - (((x * x) + (y * y)) / (2 * 90.0));
            var lighter = rng.NextDouble() < 0.06 + (0.6 * f);
            plan.Dots.Add(new Dot
            {
                Id = string.Create(CultureInfo.InvariantCulture, $"d{i + 1:D5}"),
                XMm = Math.Round(x, 3),
                YMm = Math.Round(y, 3),
                ZMm = Math.Round(zMm, 3),
                DepthMm = Math.Round(Math.Clamp(depthMm, MinDepthMm, MaxDepthMm), 2),
                DwellMs = Math.Round(Math.Clamp(dwellMs, MinDwellMs, MaxDwellMs)),
                PigmentId = lighter ? "charcoal-2" : "charcoal-1",
            });
        }
        return plan;
    }

    private readonly record struct Point(double X, double Y, double Rho, double Feather, double RadiusMm);

    /// <summary>Bridson's algorithm with a per-point exclusion radius.</summary>
    private static List<Point> Grow(Field field, double regionRadiusMm, Random rng)
    {
        var maxRadiusMm = Field.MaxExclusionMm;
        var cellMm = InteriorSpacingMm / Math.Sqrt(2);
        var halfMm = (regionRadiusMm * 1.25) + 2;
        var n = (int)Math.Ceiling(2 * halfMm / cellMm) + 1;
        var grid = new List<int>?[n * n];
        var reach = (int)Math.Ceiling(maxRadiusMm / cellMm);
        var points = new List<Point>();
        var active = new List<int>();

        bool TryAdd(double x, double y)
        {
            var (rho, feather, radius) = field.At(x, y, regionRadiusMm);
            if (rho > 1.0 + (0.05 * rng.NextDouble()))
            {
                return false;
            }
            var cx = (int)((x + halfMm) / cellMm);
            var cy = (int)((y + halfMm) / cellMm);
            if (cx < 0 || cy < 0 || cx >= n || cy >= n)
            {
                return false;
            }
            for (var gy = Math.Max(cy - reach, 0); gy <= Math.Min(cy + reach, n - 1); gy++)
            {
                for (var gx = Math.Max(cx - reach, 0); gx <= Math.Min(cx + reach, n - 1); gx++)
                {
                    if (grid[(gy * n) + gx] is not { } cell)
                    {
                        continue;
                    }
                    foreach (var k in cell)
                    {
                        var (dx, dy) = (points[k].X - x, points[k].Y - y);
                        // The larger of the two radii: sparse edge dots also keep interior dots away.
                        var r = Math.Max(radius, points[k].RadiusMm);
                        if ((dx * dx) + (dy * dy) < r * r)
                        {
                            return false;
                        }
                    }
                }
            }
            (grid[(cy * n) + cx] ??= new List<int>(1)).Add(points.Count);
            active.Add(points.Count);
            points.Add(new Point(x, y, rho, feather, radius));
            return true;
        }

        TryAdd(rng.NextDouble() - 0.5, rng.NextDouble() - 0.5);
        while (active.Count > 0)
        {
            var slot = rng.Next(active.Count);
            var from = points[active[slot]];
            var placed = false;
            for (var t = 0; t < CandidatesPerPoint && !placed; t++)
            {
                var angle = rng.NextDouble() * 2 * Math.PI;
                var distanceMm = from.RadiusMm * (1 + rng.NextDouble());
                placed = TryAdd(from.X + (distanceMm * Math.Cos(angle)), from.Y + (distanceMm * Math.Sin(angle)));
            }
            if (!placed)
            {
                active[slot] = active[^1];
                active.RemoveAt(active.Count - 1);
            }
        }
        return points;
    }

    /// <summary>Random phases of the smooth fields, drawn once per seed.</summary>
    private sealed class Field(Random rng)
    {
        private readonly double _p1 = rng.NextDouble() * 2 * Math.PI, _p2 = rng.NextDouble() * 2 * Math.PI;

        public double P3 { get; } = rng.NextDouble() * 2 * Math.PI;
        public double P4 { get; } = rng.NextDouble() * 2 * Math.PI;
        public double P5 { get; } = rng.NextDouble() * 2 * Math.PI;
        public double P6 { get; } = rng.NextDouble() * 2 * Math.PI;
        public double P7 { get; } = rng.NextDouble() * 2 * Math.PI;

        public const double MaxExclusionMm = InteriorSpacingMm + 1.1;

        /// <summary>Normalised radius (1 = region edge), feather 0..1 and exclusion radius at (x, y).</summary>
        public (double Rho, double Feather, double RadiusMm) At(double x, double y, double regionRadiusMm)
        {
            var theta = Math.Atan2(y, x);
            // A wobbly rounded square (superellipse, exponent 3): a crown patch rather than a disc.
            var edgeMm = regionRadiusMm * (1 + (0.04 * Math.Sin((2 * theta) + _p1)) + (0.03 * Math.Sin((3 * theta) + _p2)));
            var rho = Math.Cbrt(Math.Pow(Math.Abs(x), 3) + Math.Pow(Math.Abs(y), 3)) / edgeMm;
            var front = SmoothStep(-0.2, 0.8, Math.Sin(theta));
            var featherStart = 0.9 - (0.14 * front);
            var feather = SmoothStep(featherStart, 1.04, rho);
            var radiusMm = InteriorSpacingMm + (feather * (0.3 + (0.8 * front)));
            return (rho, feather, radiusMm);
        }

        private static double SmoothStep(double edge0, double edge1, double v)
        {
            var t = Math.Clamp((v - edge0) / (edge1 - edge0), 0, 1);
            return t * t * (3 - (2 * t));
        }
    }
}
