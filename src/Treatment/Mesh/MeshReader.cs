using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using SmpRobot.Geometry;

namespace SmpRobot.Treatment.Mesh;

/// <summary>A mesh file that cannot be read; the message names the file, the place and what is wrong.</summary>
public sealed class MeshFormatException(string message) : Exception(message);

/// <summary>
/// Reads the head meshes scanning services deliver: PLY (ASCII and binary, either byte order), Wavefront
/// OBJ and STL (ASCII and binary), in millimetres. Only positions and faces are read; polygons are split
/// into triangle fans; STL's separate triangles are welded at identical positions so the mesh has
/// connectivity (normals, manifold checks).
/// </summary>
/// <remarks>Written by hand: the registry here serves no PLY/OBJ/STL reader for .NET.</remarks>
public static class MeshReader
{
    /// <summary>Largest mesh file read, bytes (a fine full-head scan is tens of MB).</summary>
    public const long MaxFileBytes = 512L * 1024 * 1024;

    /// <summary>Most triangles accepted.</summary>
    public const int MaxTriangles = 5_000_000;

    /// <summary>Reads <paramref name="path"/> by its extension (.ply, .obj, .stl).</summary>
    /// <exception cref="MeshFormatException">Unknown extension, too large, or not a valid file of its format.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static TriangleMesh Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"mesh file {path} does not exist", path);
        if (info.Length > MaxFileBytes) throw new MeshFormatException($"{path}: {info.Length} bytes; at most {MaxFileBytes} are read");
        return Read(File.ReadAllBytes(path), path);
    }

    /// <summary>Reads a mesh file's <paramref name="bytes"/>; <paramref name="name"/> (its file name) gives the format by its extension and names it in errors.</summary>
    /// <exception cref="MeshFormatException">Unknown extension, too large, or not a valid file of its format.</exception>
    public static TriangleMesh Read(byte[] bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(name);
        if (bytes.LongLength > MaxFileBytes) throw new MeshFormatException($"{name}: {bytes.LongLength} bytes; at most {MaxFileBytes} are read");
        var extension = Path.GetExtension(name).ToLowerInvariant();
        return extension switch
        {
            ".ply" => ReadPly(bytes, name),
            ".obj" => ReadObj(bytes, name),
            ".stl" => ReadStl(bytes, name),
            _ => throw new MeshFormatException($"{name}: unknown mesh format '{extension}'; give a .ply, .obj or .stl file"),
        };
    }

    // ------------------------------------------------------------------ PLY

    private enum PlyEncoding { Ascii, BinaryLittleEndian, BinaryBigEndian }

    private sealed record PlyProperty(string Name, string Type, string? ListCountType);

    private sealed record PlyElement(string Name, long Count, List<PlyProperty> Properties);

    /// <summary>Reads a PLY file: a header of elements and properties, then vertex and face data.</summary>
    public static TriangleMesh ReadPly(byte[] bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var headerEnd = IndexOf(bytes, "end_header"u8);
        if (bytes.Length < 3 || bytes[0] != 'p' || bytes[1] != 'l' || bytes[2] != 'y') throw new MeshFormatException($"{name}: not a PLY file (it must start with 'ply')");
        if (headerEnd < 0) throw new MeshFormatException($"{name}: the PLY header has no end_header line");
        var dataStart = headerEnd + "end_header".Length;
        while (dataStart < bytes.Length && bytes[dataStart] != '\n') dataStart++;
        dataStart++;
        var header = Encoding.ASCII.GetString(bytes, 0, headerEnd).Split('\n', StringSplitOptions.TrimEntries);
        PlyEncoding? encoding = null;
        var elements = new List<PlyElement>();
        for (var i = 1; i < header.Length; i++)
        {
            var words = header[i].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0 || words[0] is "comment" or "obj_info") continue;
            switch (words[0])
            {
                case "format" when words.Length >= 2:
                    encoding = words[1] switch
                    {
                        "ascii" => PlyEncoding.Ascii,
                        "binary_little_endian" => PlyEncoding.BinaryLittleEndian,
                        "binary_big_endian" => PlyEncoding.BinaryBigEndian,
                        _ => throw new MeshFormatException($"{name}: unknown PLY format '{words[1]}'"),
                    };
                    break;
                case "element" when words.Length == 3 && long.TryParse(words[2], NumberStyles.None, CultureInfo.InvariantCulture, out var count):
                    elements.Add(new PlyElement(words[1], count, []));
                    break;
                case "property" when elements.Count > 0 && words.Length == 3:
                    elements[^1].Properties.Add(new PlyProperty(words[2], words[1], null));
                    break;
                case "property" when elements.Count > 0 && words.Length == 5 && words[1] == "list":
                    elements[^1].Properties.Add(new PlyProperty(words[4], words[3], words[2]));
                    break;
                default:
                    throw new MeshFormatException($"{name}: PLY header line {i + 1} '{header[i]}' is not understood");
            }
        }
        if (encoding is null) throw new MeshFormatException($"{name}: the PLY header has no format line");
        var vertexElement = elements.FirstOrDefault(e => e.Name == "vertex") ?? throw new MeshFormatException($"{name}: the PLY file has no vertex element");
        var faceElement = elements.FirstOrDefault(e => e.Name == "face") ?? throw new MeshFormatException($"{name}: the PLY file has no face element (a point cloud is not a surface)");
        foreach (var axis in new[] { "x", "y", "z" })
        {
            if (vertexElement.Properties.All(p => p.Name != axis)) throw new MeshFormatException($"{name}: the PLY vertices have no '{axis}' property");
        }
        if (faceElement.Properties.All(p => p.ListCountType is null || p.Name is not ("vertex_indices" or "vertex_index")))
        {
            throw new MeshFormatException($"{name}: the PLY faces have no vertex_indices list");
        }
        if (vertexElement.Count > MaxTriangles * 3L || faceElement.Count > MaxTriangles) throw new MeshFormatException($"{name}: too many vertices or faces (at most {MaxTriangles} triangles)");

        var reader = encoding == PlyEncoding.Ascii
            ? (IPlyValues)new AsciiPlyValues(bytes, dataStart, name)
            : new BinaryPlyValues(bytes, dataStart, encoding == PlyEncoding.BinaryBigEndian, name);
        var vertices = new List<Vec3>((int)vertexElement.Count);
        var indices = new List<int>((int)faceElement.Count * 3);
        foreach (var element in elements)
        {
            for (long n = 0; n < element.Count; n++)
            {
                double x = 0, y = 0, z = 0;
                var face = new List<int>(4);
                foreach (var property in element.Properties)
                {
                    if (property.ListCountType is { } countType)
                    {
                        var count = (long)reader.Next(countType);
                        if (count < 0 || count > 1000) throw new MeshFormatException($"{name}: a PLY list of {count} items is not a face");
                        for (var k = 0; k < count; k++)
                        {
                            var value = reader.Next(property.Type);
                            if (element == faceElement && property.Name is "vertex_indices" or "vertex_index") face.Add(checked((int)value));
                        }
                        continue;
                    }
                    var scalar = reader.Next(property.Type);
                    if (element == vertexElement)
                    {
                        if (property.Name == "x") x = scalar;
                        else if (property.Name == "y") y = scalar;
                        else if (property.Name == "z") z = scalar;
                    }
                }
                if (element == vertexElement) vertices.Add(new Vec3(x, y, z));
                else if (element == faceElement) AddPolygon(indices, face, name);
            }
        }
        return Build(vertices, indices, name);
    }

    private interface IPlyValues
    {
        double Next(string type);
    }

    private sealed class BinaryPlyValues(byte[] bytes, int offset, bool bigEndian, string name) : IPlyValues
    {
        private int _at = offset;

        public double Next(string type)
        {
            var size = type switch
            {
                "char" or "int8" or "uchar" or "uint8" => 1,
                "short" or "int16" or "ushort" or "uint16" => 2,
                "int" or "int32" or "uint" or "uint32" or "float" or "float32" => 4,
                "double" or "float64" => 8,
                _ => throw new MeshFormatException($"{name}: unknown PLY property type '{type}'"),
            };
            if (_at + size > bytes.Length) throw new MeshFormatException($"{name}: the PLY data ends early (byte {_at} of {bytes.Length})");
            var span = bytes.AsSpan(_at, size);
            _at += size;
            return type switch
            {
                "char" or "int8" => (sbyte)span[0],
                "uchar" or "uint8" => span[0],
                "short" or "int16" => bigEndian ? BinaryPrimitives.ReadInt16BigEndian(span) : BinaryPrimitives.ReadInt16LittleEndian(span),
                "ushort" or "uint16" => bigEndian ? BinaryPrimitives.ReadUInt16BigEndian(span) : BinaryPrimitives.ReadUInt16LittleEndian(span),
                "int" or "int32" => bigEndian ? BinaryPrimitives.ReadInt32BigEndian(span) : BinaryPrimitives.ReadInt32LittleEndian(span),
                "uint" or "uint32" => bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(span) : BinaryPrimitives.ReadUInt32LittleEndian(span),
                "float" or "float32" => bigEndian ? BinaryPrimitives.ReadSingleBigEndian(span) : BinaryPrimitives.ReadSingleLittleEndian(span),
                _ => bigEndian ? BinaryPrimitives.ReadDoubleBigEndian(span) : BinaryPrimitives.ReadDoubleLittleEndian(span),
            };
        }
    }

    private sealed class AsciiPlyValues(byte[] bytes, int offset, string name) : IPlyValues
    {
        private int _at = offset;

        public double Next(string type)
        {
            while (_at < bytes.Length && IsSpace(bytes[_at])) _at++;
            var start = _at;
            while (_at < bytes.Length && !IsSpace(bytes[_at])) _at++;
            if (start == _at) throw new MeshFormatException($"{name}: the PLY data ends early");
            var text = Encoding.ASCII.GetString(bytes, start, _at - start);
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)) throw new MeshFormatException($"{name}: '{text}' is not a number ({type})");
            return value;
        }
    }

    // ------------------------------------------------------------------ OBJ

    /// <summary>Reads a Wavefront OBJ file's <c>v</c> and <c>f</c> lines (other lines are ignored).</summary>
    public static TriangleMesh ReadObj(byte[] bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var vertices = new List<Vec3>();
        var indices = new List<int>();
        var lineNumber = 0;
        foreach (var raw in Encoding.UTF8.GetString(bytes).Split('\n'))
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var words = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words[0] == "v")
            {
                if (words.Length < 4 || !TryNumber(words[1], out var x) || !TryNumber(words[2], out var y) || !TryNumber(words[3], out var z))
                {
                    throw new MeshFormatException($"{name}: line {lineNumber}: a vertex needs three numbers ('{Shorten(line)}')");
                }
                vertices.Add(new Vec3(x, y, z));
            }
            else if (words[0] == "f")
            {
                var face = new List<int>(words.Length - 1);
                for (var k = 1; k < words.Length; k++)
                {
                    var first = words[k].Split('/')[0];
                    if (!int.TryParse(first, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var index) || index == 0)
                    {
                        throw new MeshFormatException($"{name}: line {lineNumber}: '{words[k]}' is not a vertex reference");
                    }
                    // OBJ counts from 1; negative indices count back from the last vertex read.
                    face.Add(index > 0 ? index - 1 : vertices.Count + index);
                }
                AddPolygon(indices, face, name + ": line " + lineNumber.ToString(CultureInfo.InvariantCulture));
            }
            if (indices.Count > MaxTriangles * 3) throw new MeshFormatException($"{name}: more than {MaxTriangles} triangles");
        }
        return Build(vertices, indices, name);
    }

    // ------------------------------------------------------------------ STL

    /// <summary>Reads an STL file, binary or ASCII (an ASCII file starts with "solid" and holds "facet" lines).</summary>
    public static TriangleMesh ReadStl(byte[] bytes, string name)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var welded = new Welder();
        var indices = new List<int>();
        // Some binary files also start with "solid" in their 80-byte header: trust the size first.
        var binary = bytes.Length >= 84 && 84 + (50L * BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(80, 4))) == bytes.Length;
        if (binary)
        {
            var count = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(80, 4));
            if (count > MaxTriangles) throw new MeshFormatException($"{name}: {count} triangles; at most {MaxTriangles}");
            for (var t = 0; t < count; t++)
            {
                var at = 84 + (t * 50) + 12; // skip the facet normal: ours come from the winding
                for (var k = 0; k < 3; k++)
                {
                    var p = new Vec3(
                        BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(at, 4)),
                        BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(at + 4, 4)),
                        BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(at + 8, 4)));
                    indices.Add(welded.Index(p));
                    at += 12;
                }
            }
            return Build(welded.Vertices, indices, name);
        }
        var text = Encoding.ASCII.GetString(bytes);
        if (!text.TrimStart().StartsWith("solid", StringComparison.Ordinal)) throw new MeshFormatException($"{name}: not an STL file (neither the binary size nor 'solid' at the start)");
        var lineNumber = 0;
        var corners = new List<int>(3);
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var words = raw.Trim().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0) continue;
            if (words[0] == "vertex")
            {
                if (words.Length < 4 || !TryNumber(words[1], out var x) || !TryNumber(words[2], out var y) || !TryNumber(words[3], out var z))
                {
                    throw new MeshFormatException($"{name}: line {lineNumber}: a vertex needs three numbers");
                }
                corners.Add(welded.Index(new Vec3(x, y, z)));
            }
            else if (words[0] == "endloop")
            {
                if (corners.Count != 3) throw new MeshFormatException($"{name}: line {lineNumber}: a facet has {corners.Count} vertices, not 3");
                indices.AddRange(corners);
                corners.Clear();
                if (indices.Count > MaxTriangles * 3) throw new MeshFormatException($"{name}: more than {MaxTriangles} triangles");
            }
        }
        return Build(welded.Vertices, indices, name);
    }

    /// <summary>Joins STL corners that sit at exactly the same position into one vertex.</summary>
    private sealed class Welder
    {
        private readonly Dictionary<Vec3, int> _index = [];

        public List<Vec3> Vertices { get; } = [];

        public int Index(Vec3 p)
        {
            if (_index.TryGetValue(p, out var i)) return i;
            i = Vertices.Count;
            Vertices.Add(p);
            _index.Add(p, i);
            return i;
        }
    }

    // ------------------------------------------------------------------ shared

    private static void AddPolygon(List<int> indices, List<int> polygon, string where)
    {
        if (polygon.Count < 3) throw new MeshFormatException($"{where}: a face with {polygon.Count} vertices is not a surface");
        for (var k = 1; k + 1 < polygon.Count; k++)
        {
            indices.Add(polygon[0]);
            indices.Add(polygon[k]);
            indices.Add(polygon[k + 1]);
        }
    }

    private static TriangleMesh Build(List<Vec3> vertices, List<int> indices, string name)
    {
        if (indices.Count == 0) throw new MeshFormatException($"{name}: the mesh has no faces");
        foreach (var v in vertices)
        {
            if (!v.IsFinite) throw new MeshFormatException($"{name}: a vertex is not a finite number");
        }
        foreach (var i in indices)
        {
            if (i < 0 || i >= vertices.Count) throw new MeshFormatException($"{name}: a face refers to vertex {i + 1}, but there are {vertices.Count}");
        }
        return new TriangleMesh(vertices, indices);
    }

    private static bool TryNumber(string text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t';

    private static int IndexOf(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan(0, Math.Min(haystack.Length, 64 * 1024)).IndexOf(needle);

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..57] + "...";
}
