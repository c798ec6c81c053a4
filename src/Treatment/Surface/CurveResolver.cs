using System.Globalization;
using NetTopologySuite.Geometries;
using SmpRobot.Contracts.V1;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Mesh;
using SvgPathProperties;

namespace SmpRobot.Treatment.Surface;

/// <summary>A curve of the design brought onto the mesh: its fine 3-D polyline and, for a closed one, its outline on the scalp map.</summary>
/// <param name="Polyline">Points on the mesh about <see cref="CurveResolver.StepMm"/> apart.</param>
/// <param name="MapOutline">The closed outline on the scalp map (valid and simple), or null for an open curve.</param>
public sealed record ResolvedCurve(SurfacePolyline Polyline, Polygon? MapOutline);

/// <summary>
/// Brings the design's curves onto the head mesh: points given in S go to their closest surface point
/// (refused when farther than <see cref="MaxOffMeshMm"/>: a curve "off the mesh"); SVG paths are sampled
/// along their length and projected onto the mesh along their view (<see cref="DesignView"/>). The result
/// is densified on the surface so that distances to it are exact to a few hundredths of a millimetre.
/// </summary>
public sealed class CurveResolver(TriangleMesh mesh, ScalpMap map)
{
    /// <summary>Farthest a given point may lie from the mesh, mm (a point drawn in the air is a mistake, not a projection).</summary>
    public const double MaxOffMeshMm = 10;

    /// <summary>Spacing of the resolved polyline's points, mm.</summary>
    public const double StepMm = 0.5;

    /// <summary>How far outside the head a view's rays start, mm.</summary>
    private const double ViewDistanceMm = 1000;

    private static readonly GeometryFactory Factory = new();

    /// <summary>The map's geometry factory (plain planar coordinates in map millimetres).</summary>
    public static GeometryFactory Geometry => Factory;

    /// <summary>
    /// Resolves <paramref name="curve"/> for the part of the design named <paramref name="where"/>; every problem
    /// is added to <paramref name="violations"/> and the result is then null.
    /// </summary>
    public ResolvedCurve? Resolve(SurfaceCurve? curve, bool closed, string where, ICollection<DesignViolation> violations)
    {
        ArgumentNullException.ThrowIfNull(violations);
        var inv = CultureInfo.InvariantCulture;
        if (curve is null || (curve.Points.Count == 0 && string.IsNullOrWhiteSpace(curve.SvgPath)))
        {
            violations.Add(new DesignViolation(where, "curve-missing", "no curve: give points (mm, frame S) or an SVG path with its view"));
            return null;
        }
        if (curve.Points.Count > 0 && !string.IsNullOrWhiteSpace(curve.SvgPath))
        {
            violations.Add(new DesignViolation(where, "curve-ambiguous", "give either points or an SVG path, not both"));
            return null;
        }
        var coarse = new List<Vec3>();
        if (curve.Points.Count > 0)
        {
            for (var i = 0; i < curve.Points.Count; i++)
            {
                var p = curve.Points[i];
                var point = new Vec3(p.XMm, p.YMm, p.ZMm);
                if (!point.IsFinite)
                {
                    violations.Add(new DesignViolation(where, "non-finite", string.Create(inv, $"point {i + 1} is not a finite number")));
                    return null;
                }
                if (mesh.ClosestPoint(point, MaxOffMeshMm) is not { } hit)
                {
                    violations.Add(new DesignViolation(where, "curve-off-mesh", string.Create(inv, $"point {i + 1} {point} is more than {MaxOffMeshMm:0} mm from the head mesh")));
                    return null;
                }
                coarse.Add(hit.Point);
            }
        }
        else
        {
            if (!TrySampleSvg(curve.SvgPath, curve.SvgView, where, violations, coarse)) return null;
        }
        if (closed && coarse.Count >= 2 && coarse[0].DistanceTo(coarse[^1]) < 1e-6) coarse.RemoveAt(coarse.Count - 1);
        if (coarse.Count < (closed ? 3 : 2))
        {
            violations.Add(new DesignViolation(where, "curve-too-short", closed ? "a closed curve needs at least three points" : "a curve needs at least two points"));
            return null;
        }
        var fine = Densify(coarse, closed);
        var polyline = new SurfacePolyline(fine, closed);
        if (!closed) return new ResolvedCurve(polyline, null);

        var ring = fine.Select(p => map.ToMap(p)).Select(m => new Coordinate(m.X, m.Y)).ToList();
        ring.Add(ring[0]);
        var polygon = Factory.CreatePolygon(ring.ToArray());
        if (!polygon.IsValid || !polygon.Shell.IsSimple)
        {
            violations.Add(new DesignViolation(where, "curve-self-intersecting", "the outline crosses itself: draw it as one loop that does not cross"));
            return null;
        }
        if (polygon.Area < 1)
        {
            violations.Add(new DesignViolation(where, "curve-too-small", "the outline encloses no area"));
            return null;
        }
        // Counter-clockwise on the map, whatever way it was drawn.
        if (!NetTopologySuite.Algorithm.Orientation.IsCCW(polygon.Shell.CoordinateSequence)) polygon = (Polygon)polygon.Reverse();
        return new ResolvedCurve(polyline, polygon);
    }

    private bool TrySampleSvg(string svgPath, DesignView view, string where, ICollection<DesignViolation> violations, List<Vec3> into)
    {
        var inv = CultureInfo.InvariantCulture;
        if (view == DesignView.Unspecified)
        {
            violations.Add(new DesignViolation(where, "svg-view", "an SVG path needs its view (scalp map, top, front, left, right or back)"));
            return false;
        }
        SvgPath path;
        double length;
        try
        {
            path = new SvgPath(svgPath);
            length = path.Length;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or IndexOutOfRangeException or NullReferenceException or KeyNotFoundException)
        {
            violations.Add(new DesignViolation(where, "svg-path", "the SVG path cannot be read: " + e.Message));
            return false;
        }
        if (!(length > 0) || !double.IsFinite(length))
        {
            violations.Add(new DesignViolation(where, "svg-path", "the SVG path has no length"));
            return false;
        }
        var samples = Math.Max(2, (int)Math.Ceiling(length / 1.0) + 1);
        for (var i = 0; i < samples; i++)
        {
            var at = length * i / (samples - 1);
            var point = path.GetPointAtLength(at);
            var hit = Project(point.X, point.Y, view);
            if (hit is null)
            {
                violations.Add(new DesignViolation(where, "curve-off-mesh", string.Create(inv, $"the SVG path at ({point.X:0.#}, {point.Y:0.#}) mm of the {ViewName(view)} view misses the head mesh")));
                return false;
            }
            into.Add(hit.Value.Point);
        }
        return true;
    }

    /// <summary>Projects the point (u, v) mm of <paramref name="view"/> (x right, y down, origin at the head's centre) onto the mesh.</summary>
    public SurfaceHit? Project(double u, double v, DesignView view)
    {
        var (c, up, front, right) = (map.Center, map.Up, map.Front, map.Right);
        return view switch
        {
            DesignView.ScalpMap => map.ToSurface(new MapPoint(u, -v)),
            DesignView.Top => mesh.Raycast(c + (right * u) - (front * v) + (up * ViewDistanceMm), -up),
            DesignView.Front => mesh.Raycast(c - (right * u) - (up * v) + (front * ViewDistanceMm), -front),
            DesignView.Back => mesh.Raycast(c + (right * u) - (up * v) - (front * ViewDistanceMm), front),
            DesignView.Left => mesh.Raycast(c - (front * u) - (up * v) - (right * ViewDistanceMm), right),
            DesignView.Right => mesh.Raycast(c + (front * u) - (up * v) + (right * ViewDistanceMm), -right),
            _ => null,
        };
    }

    /// <summary>The view's name for messages.</summary>
    public static string ViewName(DesignView view) => view switch
    {
        DesignView.ScalpMap => "scalp map",
        _ => view.ToString().ToLowerInvariant(),
    };

    /// <summary>Inserts surface points so that consecutive points are at most <see cref="StepMm"/> apart.</summary>
    private List<Vec3> Densify(List<Vec3> coarse, bool closed)
    {
        var fine = new List<Vec3>(coarse.Count * 4);
        var count = closed ? coarse.Count : coarse.Count - 1;
        for (var i = 0; i < count; i++)
        {
            var a = coarse[i];
            var b = coarse[(i + 1) % coarse.Count];
            fine.Add(a);
            var gap = a.DistanceTo(b);
            var steps = (int)Math.Ceiling(gap / StepMm);
            for (var k = 1; k < steps; k++)
            {
                var straight = a + ((b - a) * ((double)k / steps));
                fine.Add(mesh.ClosestPoint(straight, gap + 1)?.Point ?? straight);
            }
        }
        if (!closed) fine.Add(coarse[^1]);
        return fine;
    }
}
