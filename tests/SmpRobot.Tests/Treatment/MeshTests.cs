using System.Globalization;
using System.Text;
using SmpRobot.Geometry;
using SmpRobot.Treatment.Heads;
using SmpRobot.Treatment.Mesh;

namespace SmpRobot.Tests.Treatment;

public sealed class MeshTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-mesh-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A unit cube (mm) as 12 triangles, wound counter-clockwise seen from outside.</summary>
    private static (List<Vec3> Vertices, List<int> Indices) Cube(double sizeMm)
    {
        var v = new List<Vec3>();
        for (var i = 0; i < 8; i++) v.Add(new Vec3(i & 1, (i >> 1) & 1, (i >> 2) & 1) * sizeMm);
        List<int> f =
        [
            0, 2, 1, 1, 2, 3, // z = 0, facing -z
            4, 5, 6, 5, 7, 6, // z = 1, facing +z
            0, 1, 4, 1, 5, 4, // y = 0, facing -y
            2, 6, 3, 3, 6, 7, // y = 1, facing +y
            0, 4, 2, 2, 4, 6, // x = 0, facing -x
            1, 3, 5, 3, 7, 5, // x = 1, facing +x
        ];
        return (v, f);
    }

    [Fact]
    public void The_synthetic_head_is_a_closed_over_the_scalp_outward_manifold_about_57_cm_around()
    {
        var (mesh, landmarks) = SyntheticHead.Generate();
        Assert.Empty(MeshCheck.Check(mesh, landmarks.Center, p => p.Z > SyntheticHead.CutZMm + 10));
        // Around the head just above the brow ridge, as a tape measure goes.
        var circumference = Circumference(mesh, zMm: 5);
        Assert.InRange(circumference, 560, 580);
        Assert.True(landmarks.Vertex.Z > 95 && Math.Abs(landmarks.Vertex.X) < 0.5, $"vertex {landmarks.Vertex}");
        Assert.True(landmarks.ForeheadCrease.Y > 80 && landmarks.ForeheadCrease.Z > 25, $"crease {landmarks.ForeheadCrease}");
        Assert.True(landmarks.LeftTragus.X < -70 && landmarks.RightTragus.X > 70);
        // Mean edge about 3 mm: flat triangles differ from the curved surface by ~0.01 mm.
        var meanEdge = Math.Sqrt(4 * mesh.TotalAreaMm2 / Math.Sqrt(3) / mesh.FaceCount);
        Assert.InRange(meanEdge, 2.5, 3.8);
    }

    private static double Circumference(TriangleMesh mesh, double zMm)
    {
        var total = 0.0;
        Vec3? previous = null, first = null;
        for (var i = 0; i <= 720; i++)
        {
            var angle = i * Math.PI / 360;
            var hit = mesh.Raycast(new Vec3(0, 0, zMm), new Vec3(Math.Cos(angle), Math.Sin(angle), 0))!.Value.Point;
            first ??= hit;
            if (previous is { } p) total += p.DistanceTo(hit);
            previous = hit;
        }
        return total;
    }

    [Fact]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Security", "CA5394", Justification = "seeded directions for a deterministic test: not security")]
    public void Closest_points_and_ray_casts_land_on_the_surface_with_outward_normals()
    {
        var (mesh, landmarks) = SyntheticHead.Generate();
        var rng = new Random(7);
        for (var i = 0; i < 200; i++)
        {
            var d = new Vec3(rng.NextDouble() - 0.5, rng.NextDouble() - 0.5, rng.NextDouble()).Normalized();
            var hit = mesh.Raycast(landmarks.Center, d)!.Value;
            var expected = d * SyntheticHead.RadiusMm(d);
            Assert.True(hit.Point.DistanceTo(expected) < 0.1, $"ray {d}: {hit.Point} vs {expected}");
            var normal = mesh.NormalAt(hit);
            Assert.True(Vec3.Dot(normal, d) > 0.7, $"normal {normal} along {d}");
            // A point 4 mm outside comes back to the same place.
            var back = mesh.ClosestPoint(hit.Point + (normal * 4), 10)!.Value;
            Assert.True(back.Point.DistanceTo(hit.Point) < 0.2, $"{back.Point} vs {hit.Point}");
            Assert.InRange(back.DistanceMm, 3.8, 4.2);
        }
        Assert.Null(mesh.ClosestPoint(new Vec3(0, 0, 400), 10));
    }

    [Fact]
    public void Ply_binary_and_ascii_obj_and_stl_read_back_the_same_surface()
    {
        var (vertices, indices) = Cube(120);
        var cube = new TriangleMesh(vertices, indices);
        var ply = Path.Combine(_dir, "cube.ply");
        MeshWriter.WritePly(cube, ply, ["a cube"]);
        var inv = CultureInfo.InvariantCulture;
        var ascii = new StringBuilder("ply\nformat ascii 1.0\ncomment x\nelement vertex 8\nproperty double x\nproperty double y\nproperty double z\nproperty uchar red\nelement face 12\nproperty list uchar int vertex_indices\nend_header\n");
        foreach (var v in vertices) ascii.Append(inv, $"{v.X} {v.Y} {v.Z} 255\n");
        for (var f = 0; f < 12; f++) ascii.Append(inv, $"3 {indices[3 * f]} {indices[(3 * f) + 1]} {indices[(3 * f) + 2]}\n");
        File.WriteAllText(Path.Combine(_dir, "ascii.ply"), ascii.ToString());
        var obj = new StringBuilder("# cube\n");
        foreach (var v in vertices) obj.Append(inv, $"v {v.X} {v.Y} {v.Z}\n");
        // Quads with texture and normal references, the way scanners write them.
        for (var f = 0; f < 12; f += 2) obj.Append(inv, $"f {indices[3 * f] + 1}/1/1 {indices[(3 * f) + 1] + 1}/1/1 {indices[(3 * f) + 2] + 1}/1/1\nf {indices[3 * (f + 1)] + 1} {indices[(3 * (f + 1)) + 1] + 1} {indices[(3 * (f + 1)) + 2] + 1}\n");
        File.WriteAllText(Path.Combine(_dir, "cube.obj"), obj.ToString());
        var stl = new StringBuilder("solid cube\n");
        for (var f = 0; f < 12; f++)
        {
            stl.Append("facet normal 0 0 0\nouter loop\n");
            for (var k = 0; k < 3; k++)
            {
                var v = vertices[indices[(3 * f) + k]];
                stl.Append(inv, $"vertex {v.X} {v.Y} {v.Z}\n");
            }
            stl.Append("endloop\nendfacet\n");
        }
        stl.Append("endsolid cube\n");
        File.WriteAllText(Path.Combine(_dir, "cube.stl"), stl.ToString());
        var binaryStl = new byte[84 + (12 * 50)];
        BitConverter.TryWriteBytes(binaryStl.AsSpan(80), 12u);
        for (var f = 0; f < 12; f++)
        {
            for (var k = 0; k < 3; k++)
            {
                var v = vertices[indices[(3 * f) + k]];
                var at = 84 + (f * 50) + 12 + (k * 12);
                BitConverter.TryWriteBytes(binaryStl.AsSpan(at), (float)v.X);
                BitConverter.TryWriteBytes(binaryStl.AsSpan(at + 4), (float)v.Y);
                BitConverter.TryWriteBytes(binaryStl.AsSpan(at + 8), (float)v.Z);
            }
        }
        File.WriteAllBytes(Path.Combine(_dir, "binary.stl"), binaryStl);

        foreach (var name in new[] { "cube.ply", "ascii.ply", "cube.obj", "cube.stl", "binary.stl" })
        {
            var mesh = MeshReader.Read(Path.Combine(_dir, name));
            Assert.Equal(8, mesh.Vertices.Count);
            Assert.Equal(12, mesh.FaceCount);
            Assert.Equal(6 * 120 * 120, mesh.TotalAreaMm2, 6);
            Assert.Empty(MeshCheck.Check(mesh, new Vec3(60, 60, 60)));
        }
    }

    [Fact]
    public void A_mesh_with_a_hole_a_flipped_face_or_a_shared_edge_or_of_the_wrong_size_is_named()
    {
        var (vertices, indices) = Cube(120);
        var center = new Vec3(60, 60, 60);
        var holed = new TriangleMesh(vertices, indices.Take(33).ToList());
        Assert.Contains(MeshCheck.Check(holed, center), p => p.Rule == "mesh-hole");
        // A hole outside the treated area is allowed: a scan may be open below the ears.
        Assert.DoesNotContain(MeshCheck.Check(holed, center, p => p.X < 50), p => p.Rule == "mesh-hole");

        var flipped = indices.ToList();
        (flipped[1], flipped[2]) = (flipped[2], flipped[1]);
        var problems = MeshCheck.Check(new TriangleMesh(vertices, flipped), center);
        Assert.Contains(problems, p => p.Rule == "mesh-orientation");
        Assert.Contains(problems, p => p.Rule == "mesh-flipped-normals" && p.Message.Contains("1 of 12", StringComparison.Ordinal));

        var insideOut = indices.Select((_, i) => indices[(i / 3 * 3) + (2 - (i % 3))]).ToList();
        Assert.Contains(MeshCheck.Check(new TriangleMesh(vertices, insideOut), center), p => p.Rule == "mesh-flipped-normals" && p.Message.Contains("inside out", StringComparison.Ordinal));

        var fin = indices.Concat([0, 1, 6]).ToList();
        Assert.Contains(MeshCheck.Check(new TriangleMesh(vertices, fin), center), p => p.Rule == "mesh-not-manifold");

        var (small, smallIndices) = Cube(12);
        Assert.Contains(MeshCheck.Check(new TriangleMesh(small, smallIndices), new Vec3(6, 6, 6)), p => p.Rule == "mesh-size" && p.Message.Contains("millimetres", StringComparison.Ordinal));
    }

    [Fact]
    public void Broken_files_are_refused_naming_the_file_and_the_problem()
    {
        void Refused(string name, string content, string expected)
        {
            var path = Path.Combine(_dir, name);
            File.WriteAllText(path, content);
            var e = Assert.Throws<MeshFormatException>(() => MeshReader.Read(path));
            Assert.Contains(name, e.Message, StringComparison.Ordinal);
            Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        }
        Refused("a.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n", "no face element");
        Refused("b.ply", "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n", "ends early");
        Refused("c.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "refers to vertex 9");
        Refused("d.obj", "v 0 0\n", "line 1");
        Refused("e.stl", "hello", "not an STL file");
        Refused("f.off", "OFF", "unknown mesh format");
        Refused("g.obj", "v 0 0 0\n", "no faces");
    }
}
