using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Surface;

/// <summary>
/// A curve on the head as a fine 3-D polyline (points on the mesh, about 0.5 mm apart), with a grid of
/// its segments so that distances from many points (every candidate dot) cost a few segment tests each.
/// </summary>
public sealed class SurfacePolyline
{
    private readonly Vec3[] _points;
    private readonly double _cellMm;
    private readonly Dictionary<(int, int, int), List<int>> _cells = [];
    private readonly Vec3 _min, _max;

    /// <summary>
    /// Wraps <paramref name="points"/>; <paramref name="closed"/> joins the last point to the first. Queries are
    /// fastest out to about <paramref name="cellMm"/> (the grid's cell).
    /// </summary>
    public SurfacePolyline(IReadOnlyList<Vec3> points, bool closed, double cellMm = 4)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.Count < 2) throw new ArgumentException("a curve needs at least two points", nameof(points));
        _points = [.. points];
        Closed = closed;
        _cellMm = cellMm;
        _min = new Vec3(_points.Min(p => p.X), _points.Min(p => p.Y), _points.Min(p => p.Z));
        _max = new Vec3(_points.Max(p => p.X), _points.Max(p => p.Y), _points.Max(p => p.Z));
        for (var s = 0; s < SegmentCount; s++)
        {
            var (a, b) = Segment(s);
            var (x0, y0, z0) = Cell(new Vec3(Math.Min(a.X, b.X), Math.Min(a.Y, b.Y), Math.Min(a.Z, b.Z)));
            var (x1, y1, z1) = Cell(new Vec3(Math.Max(a.X, b.X), Math.Max(a.Y, b.Y), Math.Max(a.Z, b.Z)));
            for (var x = x0; x <= x1; x++)
            {
                for (var y = y0; y <= y1; y++)
                {
                    for (var z = z0; z <= z1; z++)
                    {
                        if (!_cells.TryGetValue((x, y, z), out var list)) _cells.Add((x, y, z), list = []);
                        list.Add(s);
                    }
                }
            }
        }
        var length = 0.0;
        for (var s = 0; s < SegmentCount; s++)
        {
            var (a, b) = Segment(s);
            length += a.DistanceTo(b);
        }
        LengthMm = length;
    }

    /// <summary>The points, mm.</summary>
    public IReadOnlyList<Vec3> Points => _points;

    /// <summary>Whether the last point joins the first.</summary>
    public bool Closed { get; }

    /// <summary>Length along the curve, mm.</summary>
    public double LengthMm { get; }

    private int SegmentCount => Closed ? _points.Length : _points.Length - 1;

    private (Vec3 A, Vec3 B) Segment(int s) => (_points[s], _points[(s + 1) % _points.Length]);

    private (int, int, int) Cell(Vec3 p) => ((int)Math.Floor(p.X / _cellMm), (int)Math.Floor(p.Y / _cellMm), (int)Math.Floor(p.Z / _cellMm));

    /// <summary>The 3-D distance from <paramref name="p"/> to the curve when it is at most <paramref name="maxMm"/>; otherwise null.</summary>
    public double? DistanceWithin(Vec3 p, double maxMm)
    {
        // Far from the curve's box: nothing to look at.
        if (p.X < _min.X - maxMm || p.Y < _min.Y - maxMm || p.Z < _min.Z - maxMm || p.X > _max.X + maxMm || p.Y > _max.Y + maxMm || p.Z > _max.Z + maxMm) return null;
        var reach = (int)Math.Ceiling(maxMm / _cellMm);
        var (cx, cy, cz) = Cell(p);
        double? best = null;
        for (var x = cx - reach; x <= cx + reach; x++)
        {
            for (var y = cy - reach; y <= cy + reach; y++)
            {
                for (var z = cz - reach; z <= cz + reach; z++)
                {
                    if (!_cells.TryGetValue((x, y, z), out var segments)) continue;
                    foreach (var s in segments)
                    {
                        var (a, b) = Segment(s);
                        var d = DistanceToSegment(p, a, b);
                        if (d <= maxMm && (best is null || d < best)) best = d;
                    }
                }
            }
        }
        return best;
    }

    /// <summary>Distance from <paramref name="p"/> to the segment a-b, mm.</summary>
    public static double DistanceToSegment(Vec3 p, Vec3 a, Vec3 b)
    {
        var ab = b - a;
        var lengthSquared = Vec3.Dot(ab, ab);
        var t = lengthSquared > 0 ? Math.Clamp(Vec3.Dot(p - a, ab) / lengthSquared, 0, 1) : 0;
        return p.DistanceTo(a + (ab * t));
    }

    /// <summary>The point at <paramref name="distanceMm"/> along the curve from its first point (clamped to the curve).</summary>
    public Vec3 PointAt(double distanceMm)
    {
        var left = Math.Max(0, distanceMm);
        for (var s = 0; s < SegmentCount; s++)
        {
            var (a, b) = Segment(s);
            var length = a.DistanceTo(b);
            if (left <= length) return length > 0 ? a + ((b - a) * (left / length)) : a;
            left -= length;
        }
        return Segment(SegmentCount - 1).B;
    }
}
