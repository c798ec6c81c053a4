using System.Globalization;
using NetTopologySuite.Geometries;
using NetTopologySuite.Geometries.Prepared;
using SmpRobot.Contracts.V1;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Surface;

namespace SmpRobot.Treatment.Design;

/// <summary>A needle cartridge: one needle ("1RL") or three in a round liner ("3RL"), of <paramref name="DiameterMm"/> each.</summary>
public sealed record NeedleSpec(string Configuration, double DiameterMm)
{
    /// <summary>Needle diameters a design may use, mm.</summary>
    public const double MinDiameterMm = 0.20, MaxDiameterMm = 0.35;

    /// <summary>How far pigment spreads around the puncture in healed skin, mm each side (a model, not a measurement).</summary>
    public const double SpreadMm = 0.08;

    /// <summary>"1RL-0.25": the plan's needle field.</summary>
    public string Label => Configuration + "-" + DiameterMm.ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>
    /// Diameter of the healed dot, mm, for previews: the needle group (one needle, or three in a triangle:
    /// 1 + 2/√3 needle diameters across) plus the pigment's spread, grown a little with a longer dwell than
    /// the zone's nominal one (more punctures).
    /// </summary>
    public double DotDiameterMm(double dwellMs, double nominalDwellMs)
    {
        var group = Configuration == "3RL" ? DiameterMm * (1 + (2 / Math.Sqrt(3))) : DiameterMm;
        var dwellFactor = nominalDwellMs > 0 ? Math.Clamp(dwellMs / nominalDwellMs, 0.5, 1.5) : 1;
        return group + (2 * SpreadMm * dwellFactor);
    }
}

/// <summary>What a region (a zone or a scar) places: its final density and the settings of its dots.</summary>
/// <param name="Name">Unique name.</param>
/// <param name="IsScar">A scar (its own settings over the zones).</param>
/// <param name="DensityPerMm2">Final density after every session, dots/mm².</param>
/// <param name="Needle">Its needle.</param>
/// <param name="DepthMm">Needle depth along the skin normal, mm.</param>
/// <param name="DwellMs">Nominal dwell, ms (each dot varies ±<see cref="DotSettings.DwellJitter"/> around it).</param>
/// <param name="PigmentPerSession">The pigment of each session.</param>
/// <param name="MinSpacingMm">No two of its dots closer, mm.</param>
/// <param name="FirstPassPigment">A scar's lighter pigment for its first session, or null.</param>
public sealed record RegionSettings(string Name, bool IsScar, double DensityPerMm2, NeedleSpec Needle, double DepthMm, double DwellMs, IReadOnlyList<string> PigmentPerSession, double MinSpacingMm, string? FirstPassPigment);

/// <summary>Per-dot settings shared by every region.</summary>
public static class DotSettings
{
    /// <summary>Each dot's dwell varies by up to this fraction around its region's (uniform size looks artificial).</summary>
    public const double DwellJitter = 0.10;

    /// <summary>The default smallest distance between dots, as a share of the hexagonal spacing of the density.</summary>
    public const double DefaultMinSpacingShare = 0.6;

    /// <summary>Distance between neighbours of a hexagonal grid of <paramref name="densityPerMm2"/>, mm.</summary>
    public static double HexSpacingMm(double densityPerMm2) => Math.Sqrt(2 / (Math.Sqrt(3) * densityPerMm2));
}

/// <summary>A zone brought onto the mesh.</summary>
public sealed class ResolvedZone(RegionSettings settings, ResolvedCurve boundary)
{
    private readonly IPreparedGeometry _prepared = PreparedGeometryFactory.Prepare(boundary.MapOutline!);

    public RegionSettings Settings { get; } = settings;

    public ResolvedCurve Boundary { get; } = boundary;

    /// <summary>Whether map point <paramref name="m"/> is inside.</summary>
    public bool Contains(MapPoint m) => _prepared.Contains(CurveResolver.Geometry.CreatePoint(new Coordinate(m.X, m.Y)));
}

/// <summary>A scar brought onto the mesh: a closed outline, or a line with a half-width.</summary>
public sealed class ResolvedScar(RegionSettings settings, ScarKind kind, ResolvedCurve outline, double halfWidthMm)
{
    private readonly IPreparedGeometry? _prepared = outline.MapOutline is null ? null : PreparedGeometryFactory.Prepare(outline.MapOutline);

    public RegionSettings Settings { get; } = settings;

    public ScarKind Kind { get; } = kind;

    public ResolvedCurve Outline { get; } = outline;

    /// <summary>Half the width of a line scar, mm (0 for an outline).</summary>
    public double HalfWidthMm { get; } = halfWidthMm;

    /// <summary>Whether the surface point <paramref name="p"/> (map point <paramref name="m"/>) is on the scar.</summary>
    public bool Contains(SmpRobot.Geometry.Vec3 p, MapPoint m) => _prepared is not null
        ? _prepared.Contains(CurveResolver.Geometry.CreatePoint(new Coordinate(m.X, m.Y)))
        : Outline.Polyline.DistanceWithin(p, HalfWidthMm) is not null;
}

/// <summary>An exclusion brought onto the mesh: inside its outline, or closer to it than its margin (measured on the head), no dot goes.</summary>
public sealed class ResolvedExclusion(string name, ResolvedCurve outline, double marginMm)
{
    private readonly IPreparedGeometry _prepared = PreparedGeometryFactory.Prepare(outline.MapOutline!);

    public string Name { get; } = name;

    public ResolvedCurve Outline { get; } = outline;

    public double MarginMm { get; } = marginMm;

    public bool Excludes(SmpRobot.Geometry.Vec3 p, MapPoint m) =>
        _prepared.Contains(CurveResolver.Geometry.CreatePoint(new Coordinate(m.X, m.Y)))
        || (MarginMm > 0 && Outline.Polyline.DistanceWithin(p, MarginMm) is not null);
}

/// <summary>The hairline brought onto the mesh, with its irregularity applied.</summary>
/// <param name="Drawn">The curve as drawn.</param>
/// <param name="Line">The curve with its macro waviness and asymmetry: the front edge of the band.</param>
/// <param name="Behind">The scalp map's region behind the line (towards the vertex and around the back).</param>
/// <param name="Source">The design's settings.</param>
/// <param name="Needle">The hairline's needle.</param>
public sealed record ResolvedHairline(SurfacePolyline Drawn, SurfacePolyline Line, Polygon Behind, Hairline Source, NeedleSpec Needle)
{
    private readonly IPreparedGeometry _behind = PreparedGeometryFactory.Prepare(Behind);

    /// <summary>Whether map point <paramref name="m"/> lies behind the line (where dots may go).</summary>
    public bool IsBehind(MapPoint m) => _behind.Contains(CurveResolver.Geometry.CreatePoint(new Coordinate(m.X, m.Y)));
}

/// <summary>A design checked and brought onto its head mesh: what sampling, metrics and previews work from.</summary>
public sealed class ResolvedDesign
{
    public required TreatmentDesign Source { get; init; }

    /// <summary>SHA-256 (hex) of the design file's text.</summary>
    public required string SourceSha256 { get; init; }

    public required TriangleMesh Mesh { get; init; }

    /// <summary>The head mesh's file (full path), as the design names it.</summary>
    public required string MeshPath { get; init; }

    /// <summary>SHA-256 (lower-case hex) of the head mesh's file: plans name the model by it.</summary>
    public required string MeshSha256 { get; init; }

    public required HeadLandmarks Landmarks { get; init; }

    public required ScalpMap Map { get; init; }

    /// <summary>Zones, then scars: the regions dots belong to (a dot's region index points here).</summary>
    public required IReadOnlyList<RegionSettings> Regions { get; init; }

    public required IReadOnlyList<ResolvedZone> Zones { get; init; }

    public required IReadOnlyList<ResolvedScar> Scars { get; init; }

    public required IReadOnlyList<ResolvedExclusion> Exclusions { get; init; }

    public ResolvedHairline? Hairline { get; init; }

    /// <summary>The share of the final density each session adds.</summary>
    public required IReadOnlyList<double> SessionShares { get; init; }

    /// <summary>How light each pigment looks (0 black, 1 white).</summary>
    public required IReadOnlyDictionary<string, double> PigmentLightness { get; init; }

    public int SessionCount => SessionShares.Count;

    public int Seed => (int)Source.Seed;
}
