# mode Lrwxrwxrwx uid 0 gid 0
symlink -> ../../var/lib/cni/net.d
