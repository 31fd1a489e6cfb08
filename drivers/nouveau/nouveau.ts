// nouveau.ko (Kbuild: nouveau-y := nouveau_drm.o nouveau_dmem.o nouveau_svm.o ...): the module's
// .modinfo, which nouveau_drm.c declares, and its init and exit. The driver is in
// nouveau_drm.ts; MODULE_DEVICE_TABLE(pci, nouveau_drm_pci_table) becomes the aliases modpost
// would write for its two entries (udev loads the module for a GPU by them).

import { MODULE_ALIAS, MODULE_AUTHOR, MODULE_DESCRIPTION, MODULE_LICENSE, module_exit, module_init } from "kemu/kernel";
import { nouveau_drm_exit, nouveau_drm_init } from "./nouveau_drm.ts";

MODULE_LICENSE("GPL and additional rights");
MODULE_DESCRIPTION("nVidia Riva/TNT/GeForce/Quadro/Tesla/Tegra K1+");
MODULE_AUTHOR("Nouveau Project");
MODULE_ALIAS("pci:v000010DEd*sv*sd*bc03sc*i*");
MODULE_ALIAS("pci:v000012D2d*sv*sd*bc03sc*i*");

module_init(nouveau_drm_init);
module_exit(nouveau_drm_exit);
