using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Surface;

namespace SmpRobot.Treatment.Sampling;

/// <summary>The layer a dot belongs to.</summary>
public enum DotLayer
{
    /// <summary>A zone's body, behind the hairline band.</summary>
    Body,

    /// <summary>The hairline's transition band: finer, sparser towards the front.</summary>
    Hairline,

    /// <summary>A scar.</summary>
    Scar,
}

/// <summary>What the design asks for at one surface point.</summary>
/// <param name="Region">Index into <see cref="ResolvedDesign.Regions"/>; -1 where no dot goes.</param>
/// <param name="DensityPerMm2">Final density there, dots/mm² (0 where no dot goes).</param>
/// <param name="Layer">Body, hairline band or scar.</param>
/// <param name="BandPosition">Across the hairline band: 0 at its front edge, 1 at its back; NaN outside the band.</param>
public readonly record struct DensitySample(int Region, double DensityPerMm2, DotLayer Layer, double BandPosition)
{
    public static readonly DensitySample None = new(-1, 0, DotLayer.Body, double.NaN);
}

/// <summary>
/// The design's target density at every point of the scalp: nothing in an exclusion (inside its outline
/// or within its margin, measured on the head) or in front of the hairline; a scar's own density on a
/// scar; otherwise the zone's, rising across the hairline band from <c>leadingDensityFraction</c> of it at the
/// front edge to all of it at the back (a smoothstep: monotonic, no step). The band's position is taken
/// from the 3-D distance behind the irregular hairline plus a per-dot scatter that is full at the front
/// edge and fades to nothing at the back, so the front edge is ragged, a few single dots stand a little
/// ahead of it, and the band meets the body where it is drawn.
/// </summary>
public sealed class DensityField(ResolvedDesign design)
{
    /// <summary>The design this field describes.</summary>
    public ResolvedDesign Design { get; } = design;

    /// <summary>The target at surface point <paramref name="p"/>, with the dot's own scatter <paramref name="scatterSigmas"/> (in standard deviations; 0 for the mean).</summary>
    public DensitySample At(Vec3 p, double scatterSigmas = 0) => At(p, scatterSigmas, knownZone: -1);

    /// <summary>
    /// The same, when the zone (and that the point is in the body, clear of the hairline band) is already
    /// known from the point's triangle (<paramref name="knownZone"/> ≥ 0): exclusions and scars are still
    /// looked at for the point itself, since they can be smaller than a triangle.
    /// </summary>
    private DensitySample At(Vec3 p, double scatterSigmas, int knownZone)
    {
        var m = Design.Map.ToMap(p);
        foreach (var exclusion in Design.Exclusions)
        {
            if (exclusion.Excludes(p, m)) return DensitySample.None;
        }
        var zones = Design.Zones.Count;
        for (var s = 0; s < Design.Scars.Count; s++)
        {
            if (Design.Scars[s].Contains(p, m)) return new DensitySample(zones + s, Design.Scars[s].Settings.DensityPerMm2, DotLayer.Scar, double.NaN);
        }
        if (knownZone >= 0) return new DensitySample(knownZone, Design.Zones[knownZone].Settings.DensityPerMm2, DotLayer.Body, double.NaN);
        return ZoneAndBand(p, m, scatterSigmas);
    }

    /// <summary>The zone's density at a point, with the hairline band (exclusions and scars apart).</summary>
    private DensitySample ZoneAndBand(Vec3 p, MapPoint m, double scatterSigmas)
    {
        var zones = Design.Zones.Count;
        var zone = -1;
        for (var z = 0; z < zones; z++)
        {
            if (Design.Zones[z].Contains(m))
            {
                zone = z;
                break;
            }
        }
        if (zone < 0) return DensitySample.None;
        var density = Design.Zones[zone].Settings.DensityPerMm2;
        if (Design.Hairline is not { } hairline) return new DensitySample(zone, density, DotLayer.Body, double.NaN);

        var h = hairline.Source;
        var behind = hairline.IsBehind(m);
        var reach = h.BandWidthMm + (3 * h.MicroScatterMm) + 0.5;
        var distance = hairline.Line.DistanceWithin(p, reach);
        if (distance is null) return behind ? new DensitySample(zone, density, DotLayer.Body, double.NaN) : DensitySample.None;
        var signed = behind ? distance.Value : -distance.Value;
        // The scatter roughens the front edge and fades out towards the back: the band meets the body where drawn.
        var fade = Math.Clamp(1 - (signed / h.BandWidthMm), 0, 1);
        var t = (signed + (scatterSigmas * h.MicroScatterMm * fade)) / h.BandWidthMm;
        if (t < 0) return DensitySample.None;
        if (t >= 1) return new DensitySample(zone, density, DotLayer.Body, double.NaN);
        return new DensitySample(zone, density * Ramp(t, h.LeadingDensityFraction), DotLayer.Hairline, t);
    }

    /// <summary>
    /// Each triangle's zone when the whole triangle is plainly in one zone's body (its three corners in the
    /// same zone, clear of the hairline band even with the scatter either way, and no scar or exclusion near):
    /// then only scars and exclusions need looking at for points inside it. -1: look at every point; -2: no
    /// zone dot can fall in it (its corners in no zone, or in front of the hairline, and nothing near).
    /// </summary>
    internal int[] FaceZones => _faceZones ??= ClassifyFaces();

    private int[]? _faceZones;

    private const int Mixed = -1, Empty = -2;

    private int[] ClassifyFaces()
    {
        var mesh = Design.Mesh;
        var corner = new int[mesh.Vertices.Count];
        for (var i = 0; i < corner.Length; i++)
        {
            var p = mesh.Vertices[i];
            var m = Design.Map.ToMap(p);
            var ahead = ZoneAndBand(p, m, 3);
            var behind = ZoneAndBand(p, m, -3);
            corner[i] = ahead.Region < 0 && behind.Region < 0 ? Empty
                : ahead.Region == behind.Region && ahead.Layer == DotLayer.Body && behind.Layer == DotLayer.Body ? ahead.Region
                : Mixed;
        }
        // Scars and exclusions can be thinner than a triangle: triangles near their curves are always looked at point by point.
        var nearCurves = Design.Scars.Select(s => (s.Outline.Polyline, Reach: s.HalfWidthMm))
            .Concat(Design.Exclusions.Select(e => (e.Outline.Polyline, Reach: e.MarginMm)))
            .ToList();
        var faces = new int[mesh.FaceCount];
        var indices = mesh.Indices;
        for (var f = 0; f < faces.Length; f++)
        {
            var (a, b, c) = (corner[indices[3 * f]], corner[indices[(3 * f) + 1]], corner[indices[(3 * f) + 2]]);
            faces[f] = a == b && b == c && a != Mixed ? a : Mixed;
            if (faces[f] == Mixed || nearCurves.Count == 0) continue;
            var (pa, pb, pc) = mesh.Corners(f);
            var centroid = (pa + pb + pc) * (1.0 / 3);
            var radius = Math.Max(centroid.DistanceTo(pa), Math.Max(centroid.DistanceTo(pb), centroid.DistanceTo(pc)));
            foreach (var (polyline, reach) in nearCurves)
            {
                if (polyline.DistanceWithin(centroid, radius + reach + 0.5) is not null) faces[f] = Mixed;
            }
            // A closed scar or exclusion lying wholly inside one triangle has no curve point far from it either.
            foreach (var scar in Design.Scars.Where(s => s.Outline.MapOutline is not null)) if (scar.Contains(centroid, Design.Map.ToMap(centroid))) faces[f] = Mixed;
            foreach (var exclusion in Design.Exclusions) if (exclusion.Excludes(centroid, Design.Map.ToMap(centroid))) faces[f] = Mixed;
        }
        return faces;
    }

    /// <summary>The target at a point of triangle <paramref name="face"/> (faster than <see cref="At(Vec3, double)"/> inside a plain triangle).</summary>
    public DensitySample AtFacePoint(int face, Vec3 p, double scatterSigmas)
    {
        var zone = FaceZones[face];
        if (zone == Empty) return Design.Scars.Count == 0 ? DensitySample.None : ScarOrNone(p);
        return At(p, scatterSigmas, zone);
    }

    private DensitySample ScarOrNone(Vec3 p)
    {
        var sample = At(p, 0);
        return sample.Layer == DotLayer.Scar ? sample : DensitySample.None;
    }

    /// <summary>The band's density as a share of the zone's at position <paramref name="t"/> across it (0 front, 1 back).</summary>
    public static double Ramp(double t, double leadingFraction)
    {
        var x = Math.Clamp(t, 0, 1);
        var smooth = x * x * (3 - (2 * x));
        return leadingFraction + ((1 - leadingFraction) * smooth);
    }

    /// <summary>Barycentric weights (u, v) of the points a triangle is integrated at: a fixed stratified pattern of 16.</summary>
    internal static readonly (double U, double V)[] IntegrationPattern = BuildPattern();

    private static (double, double)[] BuildPattern()
    {
        // The centres of the 16 sub-triangles (10 upright, 6 inverted) of a triangle split 4 x 4.
        var points = new List<(double, double)>();
        const int N = 4;
        for (var i = 0; i < N; i++)
        {
            for (var j = 0; i + j < N; j++)
            {
                points.Add(((i + (1.0 / 3)) / N, (j + (1.0 / 3)) / N));
                if (i + j < N - 1) points.Add(((i + (2.0 / 3)) / N, (j + (2.0 / 3)) / N));
            }
        }
        return [.. points];
    }

    /// <summary>The expected final dot count of each region: its density integrated over the mesh (without scatter).</summary>
    public double[] ExpectedDotsPerRegion()
    {
        var groups = ExpectedDotsPerGroup();
        var regions = new double[Design.Regions.Count];
        for (var g = 0; g < groups.Length; g++) regions[g / 2] += groups[g];
        return regions;
    }

    /// <summary>The expected final dot count of each quota group (see <see cref="Group"/>).</summary>
    public double[] ExpectedDotsPerGroup() => _expected ??= Integrate();

    /// <summary>A sample's quota group: 2·region for a region's body (or a scar), 2·region + 1 for its hairline band.</summary>
    public static int Group(DensitySample sample) => (2 * sample.Region) + (sample.Layer == DotLayer.Hairline ? 1 : 0);

    private double[]? _expected;

    private double[] Integrate()
    {
        var expected = new double[2 * Design.Regions.Count];
        var mesh = Design.Mesh;
        var pattern = IntegrationPattern;
        var faceZones = FaceZones;
        for (var f = 0; f < mesh.FaceCount; f++)
        {
            var zone = faceZones[f];
            if (zone >= 0)
            {
                // A plain triangle of one zone's body, nothing smaller inside it.
                expected[2 * zone] += Design.Zones[zone].Settings.DensityPerMm2 * mesh.FaceArea(f);
                continue;
            }
            if (zone == Empty && Design.Scars.Count == 0) continue;
            var share = mesh.FaceArea(f) / pattern.Length;
            foreach (var (u, v) in pattern)
            {
                var sample = AtFacePoint(f, mesh.PointAt(f, u, v), 0);
                if (sample.Region >= 0) expected[Group(sample)] += sample.DensityPerMm2 * share;
            }
        }
        return expected;
    }
}
