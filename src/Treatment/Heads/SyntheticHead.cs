using SmpRobot.Geometry;
using SmpRobot.Treatment.Mesh;

namespace SmpRobot.Treatment.Heads;

/// <summary>Named points of a head model in the scalp frame S (mm): x to the person's right, y to the front, z up.</summary>
/// <param name="Center">A point well inside the head at about brow level; the scalp chart and the outward-normal check use it.</param>
/// <param name="Vertex">The top of the head.</param>
/// <param name="Glabella">Between the brows, on the midline.</param>
/// <param name="ForeheadCrease">The uppermost forehead crease (the "brow crease line") on the midline: a conservative hairline sits about 15 mm above it.</param>
/// <param name="Crown">The crown's whorl, behind the vertex.</param>
/// <param name="LeftTragus">In front of the left ear canal.</param>
/// <param name="RightTragus">In front of the right ear canal.</param>
public sealed record HeadLandmarks(Vec3 Center, Vec3 Vertex, Vec3 Glabella, Vec3 ForeheadCrease, Vec3 Crown, Vec3 LeftTragus, Vec3 RightTragus);

/// <summary>
/// The bundled synthetic adult head: an egg-shaped ovoid (201 mm long, 160 mm broad, the vertex 100 mm above
/// the brow line) with a flatter, narrower forehead, parietal eminences, an occipital bulge, temporal
/// hollows and a brow ridge, about 57 cm around above the brows. A subdivided icosahedron (triangles of
/// about 3 mm) pushed out to that surface and cut open below the ears, as a scan of the scalp would be.
/// </summary>
public static class SyntheticHead
{
    /// <summary>Where the mesh is cut open, mm (below the ears, above the jaw).</summary>
    public const double CutZMm = -75;

    /// <summary>Generates the head mesh and its landmarks; <paramref name="subdivisions"/> 5 gives triangles of about 3 mm.</summary>
    public static (TriangleMesh Mesh, HeadLandmarks Landmarks) Generate(int subdivisions = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(subdivisions, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(subdivisions, 7);
        var (directions, faces) = Icosphere(subdivisions);
        var points = directions.Select(d => d * RadiusMm(d)).ToList();
        // Keep the faces above the cut; drop the vertices no face uses.
        var kept = new List<int>();
        for (var f = 0; f < faces.Count; f += 3)
        {
            var centroidZ = (points[faces[f]].Z + points[faces[f + 1]].Z + points[faces[f + 2]].Z) / 3;
            if (centroidZ >= CutZMm) kept.AddRange([faces[f], faces[f + 1], faces[f + 2]]);
        }
        var remap = new Dictionary<int, int>();
        var vertices = new List<Vec3>();
        var indices = new List<int>(kept.Count);
        foreach (var i in kept)
        {
            if (!remap.TryGetValue(i, out var j))
            {
                j = vertices.Count;
                remap.Add(i, j);
                vertices.Add(points[i]);
            }
            indices.Add(j);
        }
        var mesh = new TriangleMesh(vertices, indices);
        var center = Vec3.Zero;
        Vec3 Hit(Vec3 from, Vec3 direction) => mesh.Raycast(from, direction)?.Point ?? throw new InvalidOperationException("the synthetic head has no surface there");
        var landmarks = new HeadLandmarks(
            center,
            Hit(center, new Vec3(0, 0, 1)),
            Hit(new Vec3(0, 0, -10), new Vec3(0, 1, 0)),
            Hit(new Vec3(0, 0, 30), new Vec3(0, 1, 0)),
            Hit(center, new Vec3(0, -0.45, 0.89)),
            Hit(new Vec3(0, 0, -35), new Vec3(-1, 0, 0)),
            Hit(new Vec3(0, 0, -35), new Vec3(1, 0, 0)));
        return (mesh, landmarks);
    }

    /// <summary>The head's distance from its center along the unit direction <paramref name="d"/>, mm.</summary>
    public static double RadiusMm(Vec3 d)
    {
        // An ovoid: longer behind than in front, taller above than below, narrower at the forehead.
        var front = Math.Max(0, d.Y);
        var ax = 80 - (9 * front * front);
        var ay = d.Y >= 0 ? 96 : 105;
        var az = d.Z >= 0 ? 100 : 112;
        var r = 1 / Math.Sqrt((d.X * d.X / (ax * ax)) + (d.Y * d.Y / (ay * ay)) + (d.Z * d.Z / (az * az)));
        // Parietal eminences, the occipital bulge, temporal hollows and the brow ridge (mm, smooth bumps).
        r += Bump(d, new Vec3(0.62, -0.25, 0.74), 0.35, 3.0) + Bump(d, new Vec3(-0.62, -0.25, 0.74), 0.35, 3.0);
        r += Bump(d, new Vec3(0, -0.93, 0.1), 0.45, 4.0);
        r += Bump(d, new Vec3(0.86, 0.42, 0.05), 0.25, -3.0) + Bump(d, new Vec3(-0.86, 0.42, 0.05), 0.25, -3.0);
        r += Bump(d, new Vec3(0, 0.99, -0.12), 0.16, 1.5);
        return r;
    }

    private static double Bump(Vec3 d, Vec3 at, double widthRad, double heightMm)
    {
        var angle = Math.Acos(Math.Clamp(Vec3.Dot(d, at.Normalized()), -1, 1));
        return heightMm * Math.Exp(-(angle * angle) / (2 * widthRad * widthRad));
    }

    /// <summary>Unit directions and triangles of an icosahedron subdivided <paramref name="n"/> times, wound counter-clockwise seen from outside.</summary>
    private static (List<Vec3> Directions, List<int> Faces) Icosphere(int n)
    {
        var t = (1 + Math.Sqrt(5)) / 2;
        var directions = new List<Vec3>
        {
            new(-1, t, 0), new(1, t, 0), new(-1, -t, 0), new(1, -t, 0),
            new(0, -1, t), new(0, 1, t), new(0, -1, -t), new(0, 1, -t),
            new(t, 0, -1), new(t, 0, 1), new(-t, 0, -1), new(-t, 0, 1),
        };
        for (var i = 0; i < directions.Count; i++) directions[i] = directions[i].Normalized();
        var faces = new List<int>
        {
            0, 11, 5, 0, 5, 1, 0, 1, 7, 0, 7, 10, 0, 10, 11,
            1, 5, 9, 5, 11, 4, 11, 10, 2, 10, 7, 6, 7, 1, 8,
            3, 9, 4, 3, 4, 2, 3, 2, 6, 3, 6, 8, 3, 8, 9,
            4, 9, 5, 2, 4, 11, 6, 2, 10, 8, 6, 7, 9, 8, 1,
        };
        for (var level = 0; level < n; level++)
        {
            var midpoints = new Dictionary<(int, int), int>();
            int Midpoint(int a, int b)
            {
                var key = a < b ? (a, b) : (b, a);
                if (midpoints.TryGetValue(key, out var m)) return m;
                m = directions.Count;
                directions.Add(((directions[a] + directions[b]) * 0.5).Normalized());
                midpoints.Add(key, m);
                return m;
            }
            var next = new List<int>(faces.Count * 4);
            for (var f = 0; f < faces.Count; f += 3)
            {
                int a = faces[f], b = faces[f + 1], c = faces[f + 2];
                int ab = Midpoint(a, b), bc = Midpoint(b, c), ca = Midpoint(c, a);
                next.AddRange([a, ab, ca, b, bc, ab, c, ca, bc, ab, bc, ca]);
            }
            faces = next;
        }
        return (directions, faces);
    }
}
