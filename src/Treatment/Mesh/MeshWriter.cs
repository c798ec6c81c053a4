using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace SmpRobot.Treatment.Mesh;

/// <summary>Writes a mesh as binary little-endian PLY (float positions, int indices): compact and read by every scanning tool.</summary>
public static class MeshWriter
{
    /// <summary>Writes <paramref name="mesh"/> to <paramref name="path"/>; <paramref name="comments"/> go into the header.</summary>
    public static void WritePly(TriangleMesh mesh, string path, IEnumerable<string>? comments = null)
    {
        ArgumentNullException.ThrowIfNull(mesh);
        ArgumentNullException.ThrowIfNull(path);
        var header = new StringBuilder();
        header.Append("ply\nformat binary_little_endian 1.0\n");
        foreach (var comment in comments ?? []) header.Append("comment ").Append(comment.ReplaceLineEndings(" ")).Append('\n');
        header.Append(CultureInfo.InvariantCulture, $"element vertex {mesh.Vertices.Count}\nproperty float x\nproperty float y\nproperty float z\n");
        header.Append(CultureInfo.InvariantCulture, $"element face {mesh.FaceCount}\nproperty list uchar int vertex_indices\nend_header\n");
        using var file = File.Create(path);
        file.Write(Encoding.ASCII.GetBytes(header.ToString()));
        Span<byte> buffer = stackalloc byte[13];
        foreach (var v in mesh.Vertices)
        {
            BinaryPrimitives.WriteSingleLittleEndian(buffer[..4], (float)v.X);
            BinaryPrimitives.WriteSingleLittleEndian(buffer.Slice(4, 4), (float)v.Y);
            BinaryPrimitives.WriteSingleLittleEndian(buffer.Slice(8, 4), (float)v.Z);
            file.Write(buffer[..12]);
        }
        var indices = mesh.Indices;
        for (var f = 0; f < mesh.FaceCount; f++)
        {
            buffer[0] = 3;
            BinaryPrimitives.WriteInt32LittleEndian(buffer.Slice(1, 4), indices[3 * f]);
            BinaryPrimitives.WriteInt32LittleEndian(buffer.Slice(5, 4), indices[(3 * f) + 1]);
            BinaryPrimitives.WriteInt32LittleEndian(buffer.Slice(9, 4), indices[(3 * f) + 2]);
            file.Write(buffer);
        }
    }
}
