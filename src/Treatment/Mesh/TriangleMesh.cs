using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Mesh;

/// <summary>Where a query met the surface: the point, its triangle and barycentric weights, and the distance from the query.</summary>
/// <param name="Point">The surface point, mm.</param>
/// <param name="Face">Index of its triangle.</param>
/// <param name="U">Barycentric weight of the triangle's second vertex.</param>
/// <param name="V">Barycentric weight of the third vertex (the first has 1 − U − V).</param>
/// <param name="DistanceMm">From the query point (closest point) or the ray origin (ray cast), mm.</param>
public readonly record struct SurfaceHit(Vec3 Point, int Face, double U, double V, double DistanceMm);

/// <summary>
/// A triangle mesh in the scalp frame S (mm): the head model a design is drawn on. Holds per-face
/// normals and areas, area-weighted vertex normals (so a dot's normal is smooth across triangles), and a
/// uniform grid of triangles for closest-point queries and ray casts.
/// </summary>
/// <remarks>
/// Written by hand: the registry here serves no mesh library for .NET with closest-point queries; the
/// grid is simple and fast enough for head scans (10⁴–10⁶ triangles of a few mm).
/// </remarks>
public sealed class TriangleMesh
{
    private readonly Vec3[] _vertices;
    private readonly int[] _indices;
    private readonly Vec3[] _faceNormals;
    private readonly double[] _faceAreas;
    private readonly Vec3[] _vertexNormals;
    private readonly TriangleGrid _grid;

    /// <summary>Builds a mesh from vertices and triangles (three vertex indices each, counter-clockwise seen from outside).</summary>
    /// <exception cref="ArgumentException">An index is out of range, or there is no triangle.</exception>
    public TriangleMesh(IReadOnlyList<Vec3> vertices, IReadOnlyList<int> triangleIndices)
    {
        ArgumentNullException.ThrowIfNull(vertices);
        ArgumentNullException.ThrowIfNull(triangleIndices);
        if (triangleIndices.Count == 0 || triangleIndices.Count % 3 != 0) throw new ArgumentException("a mesh needs at least one triangle (three indices each)", nameof(triangleIndices));
        _vertices = [.. vertices];
        _indices = [.. triangleIndices];
        foreach (var i in _indices)
        {
            if (i < 0 || i >= _vertices.Length) throw new ArgumentException($"vertex index {i} is out of range (the mesh has {_vertices.Length} vertices)", nameof(triangleIndices));
        }
        var faces = _indices.Length / 3;
        _faceNormals = new Vec3[faces];
        _faceAreas = new double[faces];
        _vertexNormals = new Vec3[_vertices.Length];
        var min = new Vec3(double.MaxValue, double.MaxValue, double.MaxValue);
        var max = new Vec3(double.MinValue, double.MinValue, double.MinValue);
        foreach (var v in _vertices)
        {
            min = new Vec3(Math.Min(min.X, v.X), Math.Min(min.Y, v.Y), Math.Min(min.Z, v.Z));
            max = new Vec3(Math.Max(max.X, v.X), Math.Max(max.Y, v.Y), Math.Max(max.Z, v.Z));
        }
        Min = min;
        Max = max;
        for (var f = 0; f < faces; f++)
        {
            var (a, b, c) = Corners(f);
            var n = Vec3.Cross(b - a, c - a);
            var doubleArea = n.Length;
            _faceAreas[f] = doubleArea / 2;
            _faceNormals[f] = doubleArea > 0 ? n * (1 / doubleArea) : Vec3.Zero;
            // Area-weighted: the unnormalised cross product carries twice the area.
            for (var k = 0; k < 3; k++)
            {
                var vi = _indices[(3 * f) + k];
                _vertexNormals[vi] += n;
            }
        }
        for (var i = 0; i < _vertexNormals.Length; i++) _vertexNormals[i] = _vertexNormals[i].Normalized();
        TotalAreaMm2 = _faceAreas.Sum();
        _grid = new TriangleGrid(this);
    }

    /// <summary>Vertex positions, mm.</summary>
    public IReadOnlyList<Vec3> Vertices => _vertices;

    /// <summary>Triangle vertex indices, three per face.</summary>
    public IReadOnlyList<int> Indices => _indices;

    /// <summary>Number of triangles.</summary>
    public int FaceCount => _faceAreas.Length;

    /// <summary>Smallest corner of the bounding box, mm.</summary>
    public Vec3 Min { get; }

    /// <summary>Largest corner of the bounding box, mm.</summary>
    public Vec3 Max { get; }

    /// <summary>Sum of the triangle areas, mm².</summary>
    public double TotalAreaMm2 { get; }

    /// <summary>Area of face <paramref name="face"/>, mm².</summary>
    public double FaceArea(int face) => _faceAreas[face];

    /// <summary>Unit normal of face <paramref name="face"/> (right-hand rule over its corners); zero for a degenerate face.</summary>
    public Vec3 FaceNormal(int face) => _faceNormals[face];

    /// <summary>Area-weighted unit normal at vertex <paramref name="vertex"/>.</summary>
    public Vec3 VertexNormal(int vertex) => _vertexNormals[vertex];

    /// <summary>The three corners of face <paramref name="face"/>.</summary>
    public (Vec3 A, Vec3 B, Vec3 C) Corners(int face) =>
        (_vertices[_indices[3 * face]], _vertices[_indices[(3 * face) + 1]], _vertices[_indices[(3 * face) + 2]]);

    /// <summary>The point of face <paramref name="face"/> with barycentric weights (1 − u − v, u, v).</summary>
    public Vec3 PointAt(int face, double u, double v)
    {
        var (a, b, c) = Corners(face);
        return (a * (1 - u - v)) + (b * u) + (c * v);
    }

    /// <summary>The smooth unit normal at a point of face <paramref name="face"/> (vertex normals interpolated).</summary>
    public Vec3 NormalAt(int face, double u, double v)
    {
        var n = (_vertexNormals[_indices[3 * face]] * (1 - u - v)) + (_vertexNormals[_indices[(3 * face) + 1]] * u) + (_vertexNormals[_indices[(3 * face) + 2]] * v);
        var unit = n.Normalized();
        return unit == Vec3.Zero ? _faceNormals[face] : unit;
    }

    /// <summary>The smooth unit normal at a surface hit.</summary>
    public Vec3 NormalAt(SurfaceHit hit) => NormalAt(hit.Face, hit.U, hit.V);

    /// <summary>
    /// The closest surface point to <paramref name="p"/> within <paramref name="maxDistanceMm"/>, or null
    /// when no triangle is that close.
    /// </summary>
    public SurfaceHit? ClosestPoint(Vec3 p, double maxDistanceMm) => _grid.Closest(p, maxDistanceMm);

    /// <summary>The first surface point along the ray <paramref name="origin"/> + t·<paramref name="direction"/> (t ≥ 0), or null.</summary>
    public SurfaceHit? Raycast(Vec3 origin, Vec3 direction) => _grid.Raycast(origin, direction.Normalized());

    /// <summary>The closest point of triangle (a, b, c) to p, with its barycentric weights of b and c (Ericson, Real-Time Collision Detection, 5.1.5).</summary>
    internal static (Vec3 Point, double U, double V) ClosestOnTriangle(Vec3 p, Vec3 a, Vec3 b, Vec3 c)
    {
        var ab = b - a;
        var ac = c - a;
        var ap = p - a;
        var d1 = Vec3.Dot(ab, ap);
        var d2 = Vec3.Dot(ac, ap);
        if (d1 <= 0 && d2 <= 0) return (a, 0, 0);
        var bp = p - b;
        var d3 = Vec3.Dot(ab, bp);
        var d4 = Vec3.Dot(ac, bp);
        if (d3 >= 0 && d4 <= d3) return (b, 1, 0);
        var vc = (d1 * d4) - (d3 * d2);
        if (vc <= 0 && d1 >= 0 && d3 <= 0)
        {
            var t = d1 / (d1 - d3);
            return (a + (ab * t), t, 0);
        }
        var cp = p - c;
        var d5 = Vec3.Dot(ab, cp);
        var d6 = Vec3.Dot(ac, cp);
        if (d6 >= 0 && d5 <= d6) return (c, 0, 1);
        var vb = (d5 * d2) - (d1 * d6);
        if (vb <= 0 && d2 >= 0 && d6 <= 0)
        {
            var t = d2 / (d2 - d6);
            return (a + (ac * t), 0, t);
        }
        var va = (d3 * d6) - (d5 * d4);
        if (va <= 0 && (d4 - d3) >= 0 && (d5 - d6) >= 0)
        {
            var t = (d4 - d3) / ((d4 - d3) + (d5 - d6));
            return (b + ((c - b) * t), 1 - t, t);
        }
        var denom = 1 / (va + vb + vc);
        var v = vb * denom;
        var w = vc * denom;
        return (a + (ab * v) + (ac * w), v, w);
    }

    /// <summary>Möller–Trumbore ray/triangle intersection: the ray parameter and barycentric weights, or null.</summary>
    internal static (double T, double U, double V)? IntersectRay(Vec3 origin, Vec3 direction, Vec3 a, Vec3 b, Vec3 c)
    {
        const double Epsilon = 1e-12;
        var e1 = b - a;
        var e2 = c - a;
        var p = Vec3.Cross(direction, e2);
        var det = Vec3.Dot(e1, p);
        if (Math.Abs(det) < Epsilon) return null;
        var inv = 1 / det;
        var s = origin - a;
        var u = Vec3.Dot(s, p) * inv;
        if (u < 0 || u > 1) return null;
        var q = Vec3.Cross(s, e1);
        var v = Vec3.Dot(direction, q) * inv;
        if (v < 0 || u + v > 1) return null;
        var t = Vec3.Dot(e2, q) * inv;
        return t >= 0 ? (t, u, v) : null;
    }
}
