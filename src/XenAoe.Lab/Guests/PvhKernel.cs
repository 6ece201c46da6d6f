using System.Buffers.Binary;

namespace XenAoe.Lab.Guests;

/// <summary>
/// The uncompressed kernel (<c>vmlinux</c>) inside a <c>vmlinuz</c> bzImage, for QEMU's PVH boot: given an ELF kernel with a
/// Xen PVH entry note, QEMU jumps straight to it. Under TCG this is the difference that matters: decompressing Debian's
/// xz-compressed kernel takes 3 s on an idle machine and 6-7 s on a busy one, before the kernel prints its first line; the
/// ELF starts in about 1 s. The guest's boot, and so every failover, is that much shorter.
/// </summary>
internal static class PvhKernel
{
    /// <summary>Unpacks <paramref name="bzImage"/>'s payload into <paramref name="vmlinux"/>; throws if it is no PVH-bootable ELF.</summary>
    public static async Task ExtractAsync(string bzImage, string vmlinux, CancellationToken ct)
    {
        var image = await File.ReadAllBytesAsync(bzImage, ct).ConfigureAwait(false);
        // The x86 boot protocol's setup header: the setup sectors, and where the compressed payload lies after them.
        if (image.Length < 0x250 || BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(0x202)) != 0x53726448) // "HdrS"
            throw new InvalidOperationException($"{bzImage} is not a bzImage (no boot protocol header).");
        var setupSectors = image[0x1f1] == 0 ? 4 : image[0x1f1];
        var offset = (setupSectors + 1) * 512 + (int)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(0x248));
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(0x24c));
        if (offset <= 0 || length <= 0 || offset + length > image.Length)
            throw new InvalidOperationException($"{bzImage}: its payload ({length} bytes at {offset}) lies outside the file.");
        var payload = image.AsMemory(offset, length);
        var decompressor = payload.Span switch
        {
            [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, ..] => "xz",
            [0x1f, 0x8b, ..] => "gzip",
            [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
            _ => throw new InvalidOperationException($"{bzImage}: its payload is compressed in a format this lab does not unpack (xz, gzip, zstd)."),
        };
        var packed = vmlinux + ".packed";
        await File.WriteAllBytesAsync(packed, payload, ct).ConfigureAwait(false);
        try
        {
            // The payload ends with the decompressed size (4 bytes), which xz and gzip take for trailing garbage: --single-stream / -q.
            var unpack = $"set -o pipefail; {decompressor} -dc {(decompressor == "xz" ? "--single-stream" : "-q")} < \"$1\" > \"$2\" || [ -s \"$2\" ]";
            (await Command.RunAsync("bash", ["-c", unpack, "bash", packed, vmlinux], TimeSpan.FromMinutes(2), ct).ConfigureAwait(false)).EnsureSuccess();
        }
        finally
        {
            File.Delete(packed);
        }
        if (!HasPvhEntry(await File.ReadAllBytesAsync(vmlinux, ct).ConfigureAwait(false)))
            throw new InvalidOperationException($"{bzImage}: its kernel has no Xen PVH entry note (CONFIG_PVH), which QEMU needs to boot it uncompressed.");
    }

    /// <summary>Whether a 64-bit ELF has a PT_NOTE with name "Xen" and type XEN_ELFNOTE_PHYS32_ENTRY (18).</summary>
    private static bool HasPvhEntry(ReadOnlySpan<byte> elf)
    {
        if (elf.Length < 64 || !elf[..4].SequenceEqual("\u007fELF"u8) || elf[4] != 2)
            return false;
        var headers = (int)BinaryPrimitives.ReadUInt64LittleEndian(elf[0x20..]);
        var size = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x36..]);
        var count = BinaryPrimitives.ReadUInt16LittleEndian(elf[0x38..]);
        for (var i = 0; i < count; i++)
        {
            var header = elf.Slice(headers + i * size, size);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != 4) // PT_NOTE
                continue;
            var notes = elf.Slice((int)BinaryPrimitives.ReadUInt64LittleEndian(header[0x08..]), (int)BinaryPrimitives.ReadUInt64LittleEndian(header[0x20..]));
            while (notes.Length >= 12)
            {
                var nameSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(notes);
                var descSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(notes[4..]);
                var type = BinaryPrimitives.ReadUInt32LittleEndian(notes[8..]);
                if (type == 18 && nameSize == 4 && notes[12..16].SequenceEqual("Xen\0"u8))
                    return true;
                var next = 12 + Align4(nameSize) + Align4(descSize);
                if (next > notes.Length)
                    break;
                notes = notes[next..];
            }
        }
        return false;

        static int Align4(int n) => (n + 3) & ~3;
    }
}
