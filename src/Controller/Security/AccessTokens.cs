using System.Security.Cryptography;
using System.Text;

namespace SmpRobot.Controller.Security;

/// <summary>
/// Personal access tokens: 256 random bits, shown once when a user is added and stored only as their SHA-256. A
/// plain hash (not a password hash such as PBKDF2) is enough for a random 256-bit secret: there is nothing to guess.
/// </summary>
public static class AccessTokens
{
    /// <summary>Every token starts with it, so a leaked one is recognisable (and secret scanners can find it).</summary>
    public const string Prefix = "smp_";

    /// <summary>Longest token accepted in a header; anything longer is not a token and is refused unread.</summary>
    public const int MaxLength = 128;

    /// <summary>A new random token: <see cref="Prefix"/> and 43 base64url characters.</summary>
    public static string Create() => Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Lower-case hex SHA-256 of the token's UTF-8 bytes: what the store keeps.</summary>
    public static string Hash(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
    }
}
