package nodebake
import ("testing";"reflect";"github.com/nodebake/nodebake/builder/spec")
func TestLeavesDebug(t *testing.T){ for _,p:=range specLeaves(reflect.TypeFor[spec.Spec](),""){t.Log(p," -> ",configPath(p))} }
