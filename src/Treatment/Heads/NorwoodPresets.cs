using System.Globalization;
using NetTopologySuite.Geometries;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Mesh;
using SmpRobot.Treatment.Surface;
using Position = SmpRobot.Contracts.V1.Position;

namespace SmpRobot.Treatment.Heads;

/// <summary>
/// Starting designs for the Norwood stages II–VII: a conservative hairline about 15 mm above the
/// uppermost forehead crease (mature, with its frontotemporal recession kept), the zones of the stage
/// (frontal band, mid-scalp, crown, temples) at default densities, and three sessions adding 30 %, 35 %
/// and 35 % of the final density, the first in the lightest pigment. Zones are built on the scalp map
/// (azimuth from the front, distance from the vertex) and written as points on the mesh, so the file is
/// plain geometry the practitioner edits.
/// </summary>
public static class NorwoodPresets
{
    /// <summary>Stages a preset exists for.</summary>
    public const int MinStage = 2, MaxStage = 7;

    /// <summary>How far above the forehead crease a conservative hairline's midpoint sits, mm along the scalp.</summary>
    public const double HairlineAboveCreaseMm = 15;

    /// <summary>The design for Norwood stage <paramref name="stage"/> on the head <paramref name="head"/> (mesh path as it should appear in the design file).</summary>
    public static TreatmentDesign Create(int stage, HeadModel head, TriangleMesh mesh, uint seed = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(stage, MinStage);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(stage, MaxStage);
        ArgumentNullException.ThrowIfNull(head);
        ArgumentNullException.ThrowIfNull(mesh);
        var landmarks = Landmarks(head);
        var map = new ScalpMap(mesh, landmarks);
        var roman = new[] { "", "I", "II", "III", "IV", "V", "VI", "VII" }[stage];

        // The hairline's midpoint: 15 mm up the scalp from the crease, along the midline.
        var crease = map.ToMap(landmarks.ForeheadCrease);
        var front = crease.Y;
        var walked = 0.0;
        var previous = map.ToSurface(new MapPoint(0, front))!.Value.Point;
        while (walked < HairlineAboveCreaseMm && front > 10)
        {
            front -= 0.25;
            var next = map.ToSurface(new MapPoint(0, front))!.Value.Point;
            walked += next.DistanceTo(previous);
            previous = next;
        }
        var hairlineRho = front;

        // Hairline on the map: rounded across the front, receding at the frontotemporal corners (kept, not
        // filled: a conservative design), then descending towards the temples.
        double HairlineRho(double azimuthDeg)
        {
            var a = Math.Abs(azimuthDeg);
            var recession = 9 * Math.Exp(-((a - 44) * (a - 44)) / (2 * 10 * 10));
            var descent = 16 * SmoothStep((a - 48) / 24);
            var rounding = 3 * (a / 40) * (a / 40) * (a < 40 ? 1 : 0) + (a >= 40 ? 3 : 0);
            return hairlineRho - recession - rounding + descent;
        }
        var hairline = new List<MapPoint>();
        for (var az = -72.0; az <= 72.0001; az += 3) hairline.Add(Polar(HairlineRho(az), az));

        var crownMap = map.ToMap(landmarks.Crown);
        var zones = new List<(string Name, NetTopologySuite.Geometries.Geometry Area, double Density, string Needle, double Diameter)>();
        NetTopologySuite.Geometries.Geometry Taken() => zones.Count == 0 ? Factory.CreatePolygon() : Factory.BuildGeometry(zones.Select(z => z.Area)).Union();

        // The frontal band: from in front of the hairline (the hairline is the real edge) back by a depth that grows with the stage.
        var frontalDepth = stage switch { 2 => 28, 3 => 40, 4 => 50, 5 => 60, _ => 55 };
        var frontal = Sector(-66, 66, az => HairlineRho(az) - frontalDepth, az => HairlineRho(az) + 12);
        zones.Add(("frontal", frontal, 70, "3RL", 0.20));

        if (stage >= 6)
        {
            // Mid-scalp and crown merged: the whole top back to the crown's far side.
            // Stage VI is about 300 cm² of bald scalp; VII reaches down to the fringe.
            var reach = stage == 6 ? 1.25 : 1.35;
            var mid = Sector(-80 * reach, 80 * reach, az => 0, az => HairlineRho(Math.Clamp(az, -66, 66)) - frontalDepth).Union(Disc(new MapPoint(0, 0), 30 * reach));
            zones.Add(("mid-scalp", mid.Difference(Taken()), 70, "3RL", 0.20));
            var crown = Disc(crownMap, stage == 6 ? 70 : 82).Union(Sector(100, 260, az => 0, az => stage == 6 ? 85 : 100));
            zones.Add(("crown", crown.Difference(Taken()), 65, "3RL", 0.20));
        }
        else if (stage >= 4)
        {
            // A bridge of hair still separates the crown from the front.
            zones.Add(("crown", Disc(crownMap, stage == 4 ? 32 : 42).Difference(Taken()), 65, "3RL", 0.20));
        }
        else if (stage == 3)
        {
            // Stage III: the frontal band only (III vertex would add a crown).
        }

        // Temples: filled in front of the ears below the recession, finer needle.
        foreach (var sign in new[] { -1, 1 })
        {
            var lo = sign < 0 ? -88 : 66;
            var hi = sign < 0 ? -66 : 88;
            var temple = Sector(lo, hi, az => HairlineRho(Math.Clamp(az, -72, 72)) - 14, az => HairlineRho(Math.Clamp(az, -72, 72)) + 10).Difference(Taken());
            zones.Add((sign < 0 ? "temple-left" : "temple-right", temple, 55, "1RL", 0.30));
        }

        var design = new TreatmentDesign
        {
            Name = string.Create(CultureInfo.InvariantCulture, $"Norwood {roman} (conservative hairline, 3 sessions)"),
            Units = "mm",
            Head = head.Clone(),
            Seed = seed,
            Notes = string.Create(CultureInfo.InvariantCulture,
                $"Written by smp design new --norwood {stage}: hairline midpoint {HairlineAboveCreaseMm:0} mm above the forehead crease, frontotemporal recession kept; densities in dots/cm² after all sessions; edit the zones, the hairline and the sessions to the consultation."),
            Hairline = new Hairline
            {
                Curve = Curve(hairline, map),
                BandWidthMm = 10,
                MacroWavinessMm = 2,
                MacroWavelengthMm = 25,
                MicroScatterMm = 1.2,
                Asymmetry = 0.5,
                LeadingDensityFraction = 0.15,
                Needle = new Needle { Configuration = "1RL", DiameterMm = 0.25 },
                DepthMm = 0.8,
                DwellMs = 150,
            },
            Sessions = new Sessions { Shares = { 0.30, 0.35, 0.35 }, DaysAfterPrevious = { 21, 21 } },
            Pigments =
            {
                new PigmentShade { Id = "charcoal-3", Lightness = 0.42 },
                new PigmentShade { Id = "charcoal-2", Lightness = 0.32 },
                new PigmentShade { Id = "charcoal-1", Lightness = 0.24 },
            },
        };
        foreach (var (name, area, density, needle, diameter) in zones)
        {
            // Outlines a few tenths of a millimetre apart are one outline to a needle: simplify, keep the main part.
            if (Largest(NetTopologySuite.Simplify.TopologyPreservingSimplifier.Simplify(area, 0.3)) is not { } polygon) continue;
            design.Zones.Add(new Zone
            {
                Name = name,
                Boundary = Curve(polygon.Shell.Coordinates.SkipLast(1).Select(c => new MapPoint(c.X, c.Y)).ToList(), map),
                DensityPerCm2 = density,
                Needle = new Needle { Configuration = needle, DiameterMm = diameter },
                DepthMm = 0.9,
                DwellMs = 200,
                PigmentPerSession = { "charcoal-3", "charcoal-2", "charcoal-2" },
            });
        }
        return design;
    }

    /// <summary>The landmarks of a head model message.</summary>
    public static HeadLandmarks Landmarks(HeadModel head)
    {
        ArgumentNullException.ThrowIfNull(head);
        static Vec3 P(Position? p) => p is null ? Vec3.Zero : new Vec3(p.XMm, p.YMm, p.ZMm);
        return new HeadLandmarks(P(head.Center), P(head.Vertex), P(head.Glabella), P(head.ForeheadCrease), P(head.Crown), P(head.LeftTragus), P(head.RightTragus));
    }

    /// <summary>A head model message for a mesh at <paramref name="meshPath"/> with <paramref name="landmarks"/>.</summary>
    public static HeadModel HeadModel(string meshPath, HeadLandmarks landmarks, string description)
    {
        ArgumentNullException.ThrowIfNull(landmarks);
        return new HeadModel
        {
            Mesh = meshPath,
            Description = description,
            Center = Pos(landmarks.Center),
            Vertex = Pos(landmarks.Vertex),
            Glabella = Pos(landmarks.Glabella),
            ForeheadCrease = Pos(landmarks.ForeheadCrease),
            Crown = Pos(landmarks.Crown),
            LeftTragus = Pos(landmarks.LeftTragus),
            RightTragus = Pos(landmarks.RightTragus),
        };
    }

    private static readonly GeometryFactory Factory = CurveResolver.Geometry;

    private static Position Pos(Vec3 p) => new() { XMm = Math.Round(p.X, 3), YMm = Math.Round(p.Y, 3), ZMm = Math.Round(p.Z, 3) };

    private static MapPoint Polar(double rho, double azimuthDeg)
    {
        var a = azimuthDeg * Math.PI / 180;
        return new MapPoint(rho * Math.Sin(a), rho * Math.Cos(a));
    }

    private static double SmoothStep(double x)
    {
        var t = Math.Clamp(x, 0, 1);
        return t * t * (3 - (2 * t));
    }

    /// <summary>The map region between two radii functions of the azimuth, from <paramref name="fromDeg"/> to <paramref name="toDeg"/>.</summary>
    private static Polygon Sector(double fromDeg, double toDeg, Func<double, double> inner, Func<double, double> outer)
    {
        var ring = new List<Coordinate>();
        const double Step = 2;
        for (var az = fromDeg; az <= toDeg + 1e-9; az += Step) Add(ring, Polar(outer(az), az));
        for (var az = toDeg; az >= fromDeg - 1e-9; az -= Step)
        {
            var rho = inner(az);
            if (rho <= 0.01)
            {
                if (ring.Count == 0 || ring[^1].X != 0 || ring[^1].Y != 0) ring.Add(new Coordinate(0, 0));
                continue;
            }
            Add(ring, Polar(rho, az));
        }
        ring.Add(ring[0]);
        return (Polygon)Factory.CreatePolygon(ring.ToArray()).Buffer(0);

        static void Add(List<Coordinate> ring, MapPoint m) => ring.Add(new Coordinate(m.X, m.Y));
    }

    private static Polygon Disc(MapPoint center, double radius) => (Polygon)Factory.CreatePoint(new Coordinate(center.X, center.Y)).Buffer(radius, 24);

    private static Polygon? Largest(NetTopologySuite.Geometries.Geometry g) => g switch
    {
        Polygon p when !p.IsEmpty => p,
        MultiPolygon m => m.Geometries.Cast<Polygon>().OrderByDescending(p => p.Area).FirstOrDefault(),
        GeometryCollection c => c.Geometries.OfType<Polygon>().OrderByDescending(p => p.Area).FirstOrDefault(),
        _ => null,
    };

    private static SurfaceCurve Curve(IReadOnlyList<MapPoint> points, ScalpMap map)
    {
        var curve = new SurfaceCurve();
        foreach (var m in points)
        {
            if (map.ToSurface(m) is { } hit) curve.Points.Add(Pos(hit.Point));
        }
        return curve;
    }
}
