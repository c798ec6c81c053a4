using System.Buffers.Binary;
using OpenCvSharp;

namespace SmpRobot.Vision;

/// <summary>Small PNG chores: recording the print resolution, reading the size, fitting under a byte limit.</summary>
public static class PngImages
{
    private static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>
    /// Returns <paramref name="png"/> with a pHYs chunk saying <paramref name="dpi"/> (as pixels per
    /// metre, rounded), inserted right after IHDR; an existing pHYs chunk is dropped. OpenCV writes
    /// none, and without one a viewer cannot know the print size.
    /// </summary>
    public static byte[] WithDpi(byte[] png, double dpi)
    {
        ArgumentNullException.ThrowIfNull(png);
        if (!(dpi > 0) || !double.IsFinite(dpi)) throw new ArgumentOutOfRangeException(nameof(dpi));
        RequireSignature(png);
        var pixelsPerMetre = (uint)Math.Round(dpi / 0.0254);
        var data = new byte[9];
        BinaryPrimitives.WriteUInt32BigEndian(data, pixelsPerMetre);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), pixelsPerMetre);
        data[8] = 1; // unit: metre
        using var output = new MemoryStream(png.Length + 21);
        output.Write(Signature);
        var offset = Signature.Length;
        while (offset < png.Length)
        {
            var (type, length) = ChunkAt(png, offset);
            var total = 12 + length;
            if (type != "pHYs") output.Write(png, offset, total);
            if (type == "IHDR") WriteChunk(output, "pHYs", data);
            offset += total;
        }
        return output.ToArray();
    }

    /// <summary>The pHYs resolution in dots per inch, or null when the PNG has none (or not in metres).</summary>
    public static double? ReadDpi(byte[] png)
    {
        ArgumentNullException.ThrowIfNull(png);
        RequireSignature(png);
        for (var offset = Signature.Length; offset < png.Length;)
        {
            var (type, length) = ChunkAt(png, offset);
            if (type == "pHYs" && length == 9 && png[offset + 16] == 1)
            {
                return BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset + 8)) * 0.0254;
            }
            offset += 12 + length;
        }
        return null;
    }

    /// <summary>Width and height from the IHDR chunk.</summary>
    public static Size SizeOf(byte[] png)
    {
        ArgumentNullException.ThrowIfNull(png);
        RequireSignature(png);
        var (type, _) = ChunkAt(png, Signature.Length);
        if (type != "IHDR") throw new ArgumentException("PNG does not start with IHDR");
        return new Size((int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(16)), (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(20)));
    }

    /// <summary>
    /// <paramref name="png"/> itself when it has at most <paramref name="maxBytes"/> bytes; otherwise
    /// the image halved in each side (area interpolation) until it fits. <paramref name="downscaled"/>
    /// says whether it was.
    /// </summary>
    public static byte[] FitWithin(byte[] png, int maxBytes, out bool downscaled)
    {
        ArgumentNullException.ThrowIfNull(png);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1024);
        downscaled = false;
        if (png.Length <= maxBytes) return png;
        using var image = Cv2.ImDecode(png, ImreadModes.Unchanged);
        if (image.Empty()) throw new ArgumentException("not a decodable PNG");
        var current = image;
        try
        {
            while (true)
            {
                var half = new Mat();
                Cv2.Resize(current, half, new Size(Math.Max(1, current.Width / 2), Math.Max(1, current.Height / 2)), 0, 0, InterpolationFlags.Area);
                if (!ReferenceEquals(current, image)) current.Dispose();
                current = half;
                downscaled = true;
                var encoded = current.ImEncode(".png", new ImageEncodingParam(ImwriteFlags.PngCompression, 9));
                if (encoded.Length <= maxBytes || current.Width <= 16 || current.Height <= 16) return encoded;
            }
        }
        finally
        {
            if (!ReferenceEquals(current, image)) current.Dispose();
        }
    }

    private static void RequireSignature(byte[] png)
    {
        if (png.Length < Signature.Length + 12 || !png.AsSpan(0, Signature.Length).SequenceEqual(Signature)) throw new ArgumentException("not a PNG");
    }

    private static (string Type, int Length) ChunkAt(byte[] png, int offset)
    {
        if (offset + 12 > png.Length) throw new ArgumentException("truncated PNG chunk");
        var length = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(offset));
        if (length > int.MaxValue - 12 || offset + 12 + (long)length > png.Length) throw new ArgumentException("truncated PNG chunk");
        return (System.Text.Encoding.ASCII.GetString(png, offset + 4, 4), (int)length);
    }

    private static void WriteChunk(Stream output, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(word, (uint)data.Length);
        output.Write(word);
        var typeBytes = System.Text.Encoding.ASCII.GetBytes(type);
        output.Write(typeBytes);
        output.Write(data);
        // The CRC covers the chunk type and data, not the length.
        var crc = Crc(0xFFFFFFFFu, typeBytes);
        crc = Crc(crc, data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(word, crc);
        output.Write(word);
    }

    /// <summary>CRC-32 (ISO 3309, as PNG wants) continued over <paramref name="bytes"/>; System.IO.Hashing is not a dependency.</summary>
    private static uint Crc(uint crc, ReadOnlySpan<byte> bytes)
    {
        foreach (var b in bytes) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            var c = n;
            for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
