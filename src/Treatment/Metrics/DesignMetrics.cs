using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;
using SmpRobot.Treatment.Sampling;

namespace SmpRobot.Treatment.Metrics;

/// <summary>One session's dots in one region: its own and, with the sessions before it, what is on the scalp after it.</summary>
/// <param name="Session">1-based.</param>
/// <param name="Dots">Dots this session places in the region (body and band).</param>
/// <param name="TargetDensityPerCm2">What this session should add in the body, dots/cm² (its share of the final density).</param>
/// <param name="Own">The session's own dots in the region's body.</param>
/// <param name="OwnDensityErrorPct">Own density against its target, %.</param>
/// <param name="CumulativeTargetPerCm2">What the body should carry after this session, dots/cm².</param>
/// <param name="Cumulative">All dots of sessions up to this one in the body.</param>
/// <param name="CumulativeDensityErrorPct">Against its target, %.</param>
/// <param name="MinDistanceToEarlierMm">Closest of this session's dots to any earlier session's dot, mm (NaN for session 1).</param>
/// <param name="MinDistanceToEarlierOverSpacing">The same over the region's minimum spacing (at least 1: nothing placed closer).</param>
public sealed record SessionRegionMetrics(int Session, int Dots, double TargetDensityPerCm2, PatternStats Own, double OwnDensityErrorPct,
    double CumulativeTargetPerCm2, PatternStats Cumulative, double CumulativeDensityErrorPct, double MinDistanceToEarlierMm, double MinDistanceToEarlierOverSpacing);

/// <summary>A zone's or scar's metrics.</summary>
/// <param name="Name">The region.</param>
/// <param name="IsScar">A scar.</param>
/// <param name="TargetDensityPerCm2">Its final density, dots/cm².</param>
/// <param name="MinSpacingMm">Its minimum spacing, mm.</param>
/// <param name="BodyAreaCm2">Its area behind the hairline band (all of it without a hairline), on the mesh, cm².</param>
/// <param name="BandAreaCm2">Its area in the hairline band, cm².</param>
/// <param name="Sessions">Per session.</param>
public sealed record RegionMetrics(string Name, bool IsScar, double TargetDensityPerCm2, double MinSpacingMm, double BodyAreaCm2, double BandAreaCm2, IReadOnlyList<SessionRegionMetrics> Sessions);

/// <summary>Density across the hairline band, in bins from its front (0) to its back (1), all sessions together.</summary>
/// <param name="From">Bin start across the band (0-1).</param>
/// <param name="To">Bin end.</param>
/// <param name="AreaCm2">The bin's area on the mesh.</param>
/// <param name="DensityPerCm2">Dots in it / its area.</param>
/// <param name="TargetPerCm2">The design's mean density over it.</param>
public sealed record BandBin(double From, double To, double AreaCm2, double DensityPerCm2, double TargetPerCm2);

/// <summary>The hairline's metrics.</summary>
/// <param name="Bins">Density across the band, front to back.</param>
/// <param name="Rising">Each bin denser than the one in front of it.</param>
/// <param name="DotsAhead">Single dots ahead of the line (the scatter's ragged edge).</param>
/// <param name="MirrorMatchFraction">Share of the right half's band dots that have a left-half dot at their mirror image (within a third of the spacing): about the chance level for an irregular pattern, 1 for a mirrored one.</param>
/// <param name="LineMirrorDifferenceMm">Mean distance between the line's right half and its left half mirrored, mm (0 for a mirror image).</param>
public sealed record HairlineMetrics(IReadOnlyList<BandBin> Bins, bool Rising, int DotsAhead, double MirrorMatchFraction, double LineMirrorDifferenceMm);

/// <summary>Whether the design's output meets the goals of "natural", each with the worst value found.</summary>
public sealed record DesignGoals(double DensityErrorMaxPct, double RhoMin, double RhoMax, double ClarkEvansMin, double CrossSessionMinOverSpacing, int DotsInExclusions, bool HairlineRising, double HairlineMirrorMatchFraction)
{
    /// <summary>Density within this of the target in every zone and session, %.</summary>
    public const double DensityTolerancePct = 5;

    /// <summary>The range of ρ that is irregular but even.</summary>
    public const double RhoLow = 0.65, RhoHigh = 0.85;

    /// <summary>Clark–Evans at least this (well away from random clumping).</summary>
    public const double ClarkEvansLow = 1.5;

    /// <summary>Most right-half band dots with a mirrored left-half dot (a mirrored hairline would have all).</summary>
    public const double MirrorMatchHigh = 0.35;

    public bool DensityOk => DensityErrorMaxPct <= DensityTolerancePct;

    public bool RhoOk => RhoMin >= RhoLow && RhoMax <= RhoHigh;

    public bool ClarkEvansOk => ClarkEvansMin >= ClarkEvansLow;

    public bool CrossSessionOk => !(CrossSessionMinOverSpacing < 1);

    public bool ExclusionsOk => DotsInExclusions == 0;

    public bool HairlineOk => HairlineRising && !(HairlineMirrorMatchFraction > MirrorMatchHigh);

    public bool AllMet => DensityOk && RhoOk && ClarkEvansOk && CrossSessionOk && ExclusionsOk && HairlineOk;
}

/// <summary>Everything measured of a design's dots.</summary>
public sealed record DesignMetrics(int Dots, IReadOnlyList<int> DotsPerSession, IReadOnlyList<RegionMetrics> Regions, HairlineMetrics? Hairline, DesignGoals Goals);

/// <summary>
/// Measures the dots of a design: per region and per session, the density achieved against the target
/// (on the region's area of the mesh: 3-D triangle area), ρ, Clark–Evans R and the spread of
/// nearest-neighbour distances of the session's own dots and of everything on the scalp after it, the
/// closest distance of each session's dots to every earlier dot; across the hairline band, the density
/// in bins from its front to its back and how far its halves are from mirror images; and that no dot
/// lies in an exclusion. Density and pattern are measured on each zone's body (behind the band): the
/// band's density varies by design and has its own bins.
/// </summary>
public static class DesignMetricsCalculator
{
    /// <summary>Bins across the hairline band.</summary>
    public const int BandBins = 5;

    /// <summary>Measures <paramref name="dots"/>.</summary>
    public static DesignMetrics Measure(DesignDots dots)
    {
        ArgumentNullException.ThrowIfNull(dots);
        var design = dots.Design;
        var field = new DensityField(design);
        var areas = Areas(field);
        var sessions = design.SessionCount;
        var regionIndex = design.Regions.Select((r, i) => (r, i)).ToDictionary(t => t.r, t => t.i);

        // Each dot's true place: where its region's body or band is measured from (no scatter).
        var truth = dots.Dots.Select(d => field.At(d.PointMm, 0)).ToArray();
        var regions = new List<RegionMetrics>();
        var densityErrors = new List<double>();
        var rhos = new List<double>();
        var clarkEvans = new List<double>();
        var crossSession = double.PositiveInfinity;
        for (var r = 0; r < design.Regions.Count; r++)
        {
            var region = design.Regions[r];
            var perimeter = r < design.Zones.Count ? design.Zones[r].Boundary.Polyline.LengthMm : design.Scars[r - design.Zones.Count].Outline.Polyline.LengthMm;
            var inRegion = dots.Dots.Select((d, i) => (d, i)).Where(t => regionIndex[t.d.Region] == r).ToList();
            var body = inRegion.Where(t => truth[t.i].Region == r && truth[t.i].Layer != DotLayer.Hairline).ToList();
            var perSession = new List<SessionRegionMetrics>();
            var cumulativeShare = 0.0;
            for (var k = 1; k <= sessions; k++)
            {
                cumulativeShare += design.SessionShares[k - 1];
                var own = body.Where(t => t.d.Session == k).Select(t => t.d.PointMm).ToList();
                var upTo = body.Where(t => t.d.Session <= k).Select(t => t.d.PointMm).ToList();
                var ownStats = PatternMetrics.Of(own, areas.Body[r], perimeter);
                var cumStats = PatternMetrics.Of(upTo, areas.Body[r], perimeter);
                var ownTarget = region.DensityPerMm2 * design.SessionShares[k - 1] * 100;
                var cumTarget = region.DensityPerMm2 * cumulativeShare * 100;
                var ownError = ErrorPct(ownStats.DensityPerCm2, ownTarget);
                var cumError = ErrorPct(cumStats.DensityPerCm2, cumTarget);
                var mine = inRegion.Where(t => t.d.Session == k).Select(t => t.d.PointMm).ToList();
                var earlier = dots.Dots.Where(d => d.Session < k).Select(d => d.PointMm).ToList();
                var minEarlier = k == 1 || mine.Count == 0 ? double.NaN : PatternMetrics.NearestDistances(mine, earlier).DefaultIfEmpty(double.PositiveInfinity).Min();
                var overSpacing = double.IsNaN(minEarlier) ? double.NaN : minEarlier / region.MinSpacingMm;
                if (!double.IsNaN(overSpacing)) crossSession = Math.Min(crossSession, overSpacing);
                if (areas.Body[r] > 0 && own.Count > 0)
                {
                    densityErrors.Add(Math.Abs(ownError));
                    densityErrors.Add(Math.Abs(cumError));
                }
                // Pattern goals on what the scalp carries after each session (enough dots to mean something).
                if (upTo.Count >= 30)
                {
                    rhos.Add(cumStats.Rho);
                    clarkEvans.Add(cumStats.ClarkEvans);
                }
                perSession.Add(new SessionRegionMetrics(k, mine.Count, ownTarget, ownStats, ownError, cumTarget, cumStats, cumError, minEarlier, overSpacing));
            }
            regions.Add(new RegionMetrics(region.Name, region.IsScar, region.DensityPerMm2 * 100, region.MinSpacingMm, areas.Body[r] / 100, areas.Band[r] / 100, perSession));
        }

        var inExclusions = dots.Dots.Count(d => design.Exclusions.Any(e => e.Excludes(d.PointMm, design.Map.ToMap(d.PointMm))));
        var hairline = design.Hairline is null ? null : Hairline(dots, truth, areas, design);
        var goals = new DesignGoals(
            densityErrors.DefaultIfEmpty(0).Max(),
            rhos.DefaultIfEmpty(double.NaN).Min(),
            rhos.DefaultIfEmpty(double.NaN).Max(),
            clarkEvans.DefaultIfEmpty(double.NaN).Min(),
            double.IsPositiveInfinity(crossSession) ? double.NaN : crossSession,
            inExclusions,
            hairline?.Rising ?? true,
            hairline?.MirrorMatchFraction ?? 0);
        var perSessionCounts = Enumerable.Range(1, sessions).Select(k => dots.Dots.Count(d => d.Session == k)).ToList();
        return new DesignMetrics(dots.Dots.Count, perSessionCounts, regions, hairline, goals);
    }

    private static double ErrorPct(double achieved, double target) => target > 0 ? ((achieved / target) - 1) * 100 : 0;

    private sealed record AreaTable(double[] Body, double[] Band, double[] BinArea, double[] BinExpected);

    /// <summary>Areas on the mesh: each region's body and band, and the band's bins (with the design's expected dots in each).</summary>
    private static AreaTable Areas(DensityField field)
    {
        var design = field.Design;
        var body = new double[design.Regions.Count];
        var band = new double[design.Regions.Count];
        var binArea = new double[BandBins];
        var binExpected = new double[BandBins];
        var mesh = design.Mesh;
        var pattern = DensityField.IntegrationPattern;
        for (var f = 0; f < mesh.FaceCount; f++)
        {
            var zone = field.FaceZones[f];
            if (zone >= 0)
            {
                body[zone] += mesh.FaceArea(f);
                continue;
            }
            var share = mesh.FaceArea(f) / pattern.Length;
            foreach (var (u, v) in pattern)
            {
                var s = field.AtFacePoint(f, mesh.PointAt(f, u, v), 0);
                if (s.Region < 0) continue;
                if (s.Layer == DotLayer.Hairline)
                {
                    band[s.Region] += share;
                    var bin = Math.Min(BandBins - 1, (int)(s.BandPosition * BandBins));
                    binArea[bin] += share;
                    binExpected[bin] += s.DensityPerMm2 * share;
                }
                else
                {
                    body[s.Region] += share;
                }
            }
        }
        return new AreaTable(body, band, binArea, binExpected);
    }

    private static HairlineMetrics Hairline(DesignDots dots, DensitySample[] truth, AreaTable areas, ResolvedDesign design)
    {
        var counts = new int[BandBins];
        var ahead = 0;
        for (var i = 0; i < dots.Dots.Count; i++)
        {
            var d = dots.Dots[i];
            if (d.Layer == DotLayer.Scar) continue;
            if (truth[i].Region < 0) ahead++;
            else if (truth[i].Layer == DotLayer.Hairline) counts[Math.Min(BandBins - 1, (int)(truth[i].BandPosition * BandBins))]++;
        }
        var bins = new List<BandBin>();
        for (var b = 0; b < BandBins; b++)
        {
            var area = areas.BinArea[b];
            bins.Add(new BandBin((double)b / BandBins, (double)(b + 1) / BandBins, area / 100, area > 0 ? counts[b] / area * 100 : 0, area > 0 ? areas.BinExpected[b] / area * 100 : 0));
        }
        var rising = bins.Zip(bins.Skip(1)).All(p => p.Second.DensityPerCm2 > p.First.DensityPerCm2);

        // Mirror images: the left half's band dots reflected across the midline plane, against the right half's.
        var map = design.Map;
        Vec3 Mirror(Vec3 p)
        {
            var offset = Vec3.Dot(p - map.Center, map.Right);
            return p - (map.Right * (2 * offset));
        }
        var band = dots.Dots.Where((d, i) => truth[i].Layer == DotLayer.Hairline).Select(d => d.PointMm).ToList();
        var left = band.Where(p => Vec3.Dot(p - map.Center, map.Right) < 0).Select(Mirror).ToList();
        var right = band.Where(p => Vec3.Dot(p - map.Center, map.Right) > 0).ToList();
        var spacing = (design.Zones.Count > 0 ? design.Zones.Min(z => DotSettings.HexSpacingMm(z.Settings.DensityPerMm2)) : 1) / 3;
        var matched = right.Count == 0 || left.Count == 0 ? 0 : PatternMetrics.NearestDistances(right, left).Count(d => d <= spacing) / (double)right.Count;

        // The line itself: its right half against its left half mirrored, point for point along the curve from the middle.
        var line = design.Hairline!.Line.Points;
        var mirroredLeft = line.Where(p => Vec3.Dot(p - map.Center, map.Right) < 0).Select(Mirror).ToList();
        var rightHalf = line.Where(p => Vec3.Dot(p - map.Center, map.Right) > 0).ToList();
        var difference = rightHalf.Count == 0 || mirroredLeft.Count == 0 ? 0 : PatternMetrics.NearestDistances(rightHalf, mirroredLeft).Average();
        return new HairlineMetrics(bins, rising, ahead, matched, difference);
    }
}
